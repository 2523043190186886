using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// An event flag living in the host, shared by name (Python's <c>multiprocessing.Event(name=...)</c>).
/// Open one with <see cref="BridgeSession.EventAsync(string?, CancellationToken)"/>.
/// </summary>
public sealed class BridgeEvent
{
    private readonly BridgeSession _session;

    internal BridgeEvent(BridgeSession session, string name)
    {
        _session = session;
        Name = name;
    }

    /// <summary>The host's name of the event.</summary>
    public string Name { get; }

    /// <summary>Sets the flag, waking every waiter.</summary>
    public Task SetAsync(CancellationToken cancellationToken = default) =>
        _session.CallAsync(_session.Synchronization.SetEventAsync(Request(), cancellationToken: cancellationToken), cancellationToken);

    /// <summary>Clears the flag.</summary>
    public Task ClearAsync(CancellationToken cancellationToken = default) =>
        _session.CallAsync(_session.Synchronization.ClearEventAsync(Request(), cancellationToken: cancellationToken), cancellationToken);

    /// <summary>Whether the flag is set (one call).</summary>
    public async Task<bool> IsSetAsync(CancellationToken cancellationToken = default) =>
        (await _session.CallAsync(_session.Synchronization.IsEventSetAsync(Request(), cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false)).IsSet;

    /// <summary>Waits until the flag is set.</summary>
    public Task WaitAsync(CancellationToken cancellationToken = default) => WaitAsync(null, cancellationToken);

    /// <summary>
    /// Waits until the flag is set, at most <paramref name="timeout"/> (null: as long as it
    /// takes). Returns the flag: false only when the wait timed out.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var request = new WaitEventRequest { Target = _session.Ref(Name), Wait = Waits.Of(timeout) };
        var reply = await _session.CallAsync(_session.Synchronization.WaitEventAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return reply.IsSet;
    }

    private EventRequest Request() => new() { Target = _session.Ref(Name) };
}
