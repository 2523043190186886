namespace Bridge.Client;

/// <summary>
/// A queue seen from .NET with the item type chosen per call: items are MessagePack values,
/// so a Python client reads a C# string as str, an int[] as list, and so on. Items Python
/// pickled (extension type 1) are not readable here. <see cref="BridgeQueue{T}"/> is the
/// typed view with the stdlib's timeouts.
/// </summary>
public sealed class BridgeQueue
{
    private readonly QueueCore _core;

    internal BridgeQueue(BridgeSession session, string name) => _core = new QueueCore(session, name, 0);

    /// <summary>The host's name of the queue.</summary>
    public string Name => _core.Name;

    /// <summary>Puts <paramref name="item"/>, waiting for space as long as it takes.</summary>
    public async Task PutAsync<T>(T item, CancellationToken cancellationToken) =>
        await _core.PutAsync(_core.Session.Payloads.Encode(item, cancellationToken), Waits.Forever, cancellationToken).ConfigureAwait(false);

    /// <summary>The next item, or default with found = false when none came within the timeout.</summary>
    public async Task<(bool Found, T? Item)> GetAsync<T>(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var payload = await _core.GetAsync(Waits.Of(timeout), cancellationToken).ConfigureAwait(false);
        return payload is null ? (false, default) : (true, _core.Session.Payloads.Decode<T>(payload.Memory, cancellationToken));
    }
}
