using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// A barrier for <see cref="Parties"/> parties living in the host, shared by name (Python's
/// <c>multiprocessing.Barrier(parties, name=...)</c>). Open one with
/// <see cref="BridgeSession.BarrierAsync(string?, int, CancellationToken)"/>.
/// </summary>
public sealed class BridgeBarrier
{
    private readonly BridgeSession _session;
    private readonly Func<CancellationToken, Task>? _action;

    internal BridgeBarrier(BridgeSession session, string name, int parties, Func<CancellationToken, Task>? action)
    {
        _session = session;
        Name = name;
        Parties = parties;
        _action = action;
    }

    /// <summary>The host's name of the barrier.</summary>
    public string Name { get; }

    /// <summary>How many parties must arrive to pass.</summary>
    public int Parties { get; }

    /// <summary>Waits until every party arrives (see <see cref="WaitAsync(TimeSpan?, CancellationToken)"/>), as long as it takes.</summary>
    public Task<int> WaitAsync(CancellationToken cancellationToken = default) => WaitAsync(null, cancellationToken);

    /// <summary>
    /// Waits until every party arrives, at most <paramref name="timeout"/> (null: as long as
    /// it takes). Returns this party's arrival index, 0 .. Parties-1. When this handle has an
    /// action and its caller arrives last, the action runs before the others are released.
    /// <see cref="BrokenBarrierException"/> when the barrier is or becomes broken (aborted,
    /// reset, a party's timeout, including this one's, or a failed action).
    /// </summary>
    public async Task<int> WaitAsync(TimeSpan? timeout, CancellationToken cancellationToken = default)
    {
        var request = new WaitBarrierRequest { Target = _session.Ref(Name), Wait = Waits.Of(timeout), HasAction = _action is not null };
        var reply = await _session.CallAsync(_session.Synchronization.WaitBarrierAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        if (reply.RunAction)
        {
            var succeeded = false;
            try
            {
                await _action!(cancellationToken).ConfigureAwait(false);
                succeeded = true;
            }
            finally
            {
                // Reported whatever happens: the other parties wait for it (and break on failure).
                var complete = new CompleteBarrierActionRequest { Target = _session.Ref(Name), Generation = reply.Generation, Succeeded = succeeded };
                await _session.CallAsync(_session.Synchronization.CompleteBarrierActionAsync(complete, cancellationToken: CancellationToken.None), CancellationToken.None).ConfigureAwait(false);
            }
        }

        return reply.Index;
    }

    /// <summary>Returns the barrier to its initial state; parties waiting get <see cref="BrokenBarrierException"/>.</summary>
    public Task ResetAsync(CancellationToken cancellationToken = default) =>
        _session.CallAsync(_session.Synchronization.ResetBarrierAsync(Request(), cancellationToken: cancellationToken), cancellationToken);

    /// <summary>Breaks the barrier: current and later waits fail with <see cref="BrokenBarrierException"/>.</summary>
    public Task AbortAsync(CancellationToken cancellationToken = default) =>
        _session.CallAsync(_session.Synchronization.AbortBarrierAsync(Request(), cancellationToken: cancellationToken), cancellationToken);

    /// <summary>How many parties wait now (one call).</summary>
    public async Task<int> GetWaitingCountAsync(CancellationToken cancellationToken = default) =>
        (await StateAsync(cancellationToken).ConfigureAwait(false)).NWaiting;

    /// <summary>Whether the barrier is broken (one call).</summary>
    public async Task<bool> IsBrokenAsync(CancellationToken cancellationToken = default) =>
        (await StateAsync(cancellationToken).ConfigureAwait(false)).Broken;

    private Task<BarrierState> StateAsync(CancellationToken cancellationToken) =>
        _session.CallAsync(_session.Synchronization.GetBarrierStateAsync(Request(), cancellationToken: cancellationToken), cancellationToken);

    private BarrierRequest Request() => new() { Target = _session.Ref(Name) };
}
