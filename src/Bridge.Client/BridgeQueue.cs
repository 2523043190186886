using Bridge.Contracts.V1;
using Google.Protobuf;
using MessagePack;

namespace Bridge.Client;

/// <summary>
/// A queue seen from .NET: items are MessagePack values, so a Python client reads a C#
/// string as str, an int[] as list, and so on. Items Python pickled (extension type 1)
/// are not readable here.
/// </summary>
public sealed class BridgeQueue(BridgeSession session, string name)
{
    public string Name { get; } = name;

    public async Task PutAsync<T>(T item, CancellationToken cancellationToken)
    {
        var request = new PutRequest { Target = session.Ref(Name), Wait = new WaitPolicy { Block = true } };
        request.Items.Add(UnsafeByteOperations.UnsafeWrap(MessagePackSerializer.Serialize(item, cancellationToken: cancellationToken)));
        await session.Queues.PutAsync(request, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The next item, or default with found = false when none came within the timeout.</summary>
    public async Task<(bool Found, T? Item)> GetAsync<T>(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var request = new GetRequest
        {
            Target = session.Ref(Name),
            MaxItems = 1,
            Wait = new WaitPolicy { Block = true, TimeoutSeconds = timeout.TotalSeconds },
        };
        var reply = await session.Queues.GetAsync(request, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (reply.Items.Count == 0)
        {
            return (false, default);
        }

        // Acknowledged at once: this client keeps no prefetch, so nothing should go back to the queue.
        await session.Queues.AckAsync(new AckRequest { Target = request.Target, Count = reply.Items.Count }, cancellationToken: cancellationToken).ConfigureAwait(false);
        return (true, MessagePackSerializer.Deserialize<T>(reply.Items[0].Memory, cancellationToken: cancellationToken));
    }
}
