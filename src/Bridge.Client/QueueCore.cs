using System.Globalization;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Grpc.Core;

namespace Bridge.Client;

/// <summary>
/// The calls of one queue for one session, on raw payloads. Puts are sent at once (no
/// buffering, no reserved slots); gets take one item per call, acknowledging the items
/// received before on the same call (see <see cref="QueueAcks"/>).
/// </summary>
internal sealed class QueueCore(BridgeSession session, string name, long maxSize)
{
    private readonly QueueAcks _acks = session.AcksFor(name);

    public BridgeSession Session => session;

    public string Name => name;

    public long MaxSize => maxSize;

    /// <summary>Whether the item went in (false: a bounded queue stayed full for the whole wait).</summary>
    public async Task<bool> PutAsync(ByteString item, WaitPolicy wait, CancellationToken cancellationToken)
    {
        var request = new PutRequest { Target = session.Ref(name), Wait = wait };
        request.Items.Add(item);
        var reply = await session.CallAsync(session.Queues.PutAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return reply.Accepted == 1;
    }

    /// <summary>The next item, or null when the queue stayed empty for the whole wait.</summary>
    public async Task<ByteString?> GetAsync(WaitPolicy wait, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var acks = _acks.Take();
        if (acks > 0)
        {
            // The acknowledgements ride on a call that does not wait: a cancel during a long
            // wait could not tell whether the host had applied them.
            GetReply first;
            try
            {
                first = await GetCallAsync(Waits.NoWait, acks, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex) when (ex.InnerException is RpcException { StatusCode: StatusCode.Unavailable })
            {
                _acks.Restore(acks);
                throw;
            }

            if (first.Items.Count > 0 || !wait.Block || wait.TimeoutSeconds == 0)
            {
                return Received(first);
            }
        }

        return Received(await GetCallAsync(wait, 0, cancellationToken).ConfigureAwait(false));
    }

    public Task<QueueState> StateAsync(CancellationToken cancellationToken) =>
        session.CallAsync(session.Queues.GetQueueStateAsync(new QueueStateRequest { Target = session.Ref(name) }, cancellationToken: cancellationToken), cancellationToken);

    public Task TaskDoneAsync(CancellationToken cancellationToken) =>
        session.CallAsync(session.Queues.TaskDoneAsync(new TaskDoneRequest { Target = session.Ref(name), Count = 1 }, cancellationToken: cancellationToken), cancellationToken);

    public async Task<bool> JoinAsync(WaitPolicy wait, CancellationToken cancellationToken)
    {
        var request = new JoinQueueRequest { Target = session.Ref(name), Wait = wait };
        return (await session.CallAsync(session.Queues.JoinQueueAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false)).Done;
    }

    public TimeoutException Empty(TimeSpan? timeout) =>
        new(string.Create(CultureInfo.InvariantCulture, $"the queue '{name}' stayed empty for {timeout.GetValueOrDefault().TotalSeconds:0.###} s (Python's queue.Empty)"));

    public TimeoutException Full(TimeSpan? timeout) =>
        new(string.Create(CultureInfo.InvariantCulture, $"the queue '{name}' stayed full for {timeout.GetValueOrDefault().TotalSeconds:0.###} s (Python's queue.Full)"));

    private Task<GetReply> GetCallAsync(WaitPolicy wait, long acks, CancellationToken cancellationToken)
    {
        var request = new GetRequest { Target = session.Ref(name), MaxItems = 1, Wait = wait, Ack = acks };
        return session.CallAsync(session.Queues.GetAsync(request, cancellationToken: cancellationToken), cancellationToken);
    }

    private ByteString? Received(GetReply reply)
    {
        if (reply.Items.Count == 0)
        {
            return null;
        }

        _acks.Received(reply.Items.Count);
        return reply.Items[0];
    }
}
