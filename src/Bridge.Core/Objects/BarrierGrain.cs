using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// threading.Barrier (which multiprocessing.Barrier mirrors) with generations. The action
/// runs in the client of the last party to arrive: it gets RunAction, the others stay
/// waiting until it reports the outcome with CompleteAction.
/// </summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class BarrierGrain : ObjectGrain, IBarrierGrain
{
    private readonly ILogger<BarrierGrain> _logger;

    // Rounds whose parties have all arrived but whose action has not reported yet. New
    // arrivals meanwhile fill the next generation, as they would queue behind the lock
    // the action holds in threading.
    private readonly Dictionary<long, ActionRound> _actionRounds = [];
    private List<BarrierWaiter> _arrivals = [];
    private int _parties;
    private long _generation;
    private bool _broken;

    public BarrierGrain(IGrainFactory grains, ILogger<BarrierGrain> logger)
        : base(grains, ObjectFamily.Barrier, "Barrier", logger)
    {
        _logger = logger;
    }

    public async Task<int> Open(string sessionId, OpenMode mode, int parties)
    {
        if (mode != OpenMode.Attach && parties < 1)
        {
            throw BridgeException.InvalidArgument($"parties must be >= 1, got {parties}");
        }

        await Membership.Open(
            sessionId,
            mode,
            mismatch: () => _parties != parties ? $"a Barrier for {_parties} parties, not {parties}" : null,
            create: () =>
            {
                _parties = parties;
                _generation = 0;
                _broken = false;
                Log.ObjectCreated(_logger, ObjectFamily.Barrier, Membership.Address.Name, sessionId);
            });
        return _parties;
    }

    public async Task<BarrierArrival> Wait(string sessionId, TimeSpan? timeout, bool hasAction, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        await Membership.EnsureMember(sessionId);
        if (_broken)
        {
            throw Broken();
        }

        var generation = _generation;
        var index = _arrivals.Count;
        if (index == _parties - 1)
        {
            var round = _arrivals;
            _arrivals = [];
            _generation++;
            if (hasAction)
            {
                _actionRounds[generation] = new ActionRound(sessionId, round);
                return new BarrierArrival(index, true, generation);
            }

            Release(round);
            return new BarrierArrival(index, false, generation);
        }

        var waiter = new BarrierWaiter(sessionId);
        _arrivals.Add(waiter);
        var done = await waiter.WaitAsync(timeout, cancellationToken);
        if (!done && !cancellationToken.IsCancellationRequested && _actionRounds.ContainsKey(generation))
        {
            // Everyone arrived before the timeout ran out; only the action is outstanding.
            // threading's waiter would find the barrier draining and not time out either.
            done = await waiter.WaitAsync(null, cancellationToken);
        }

        if (!done)
        {
            // A party that stops waiting (timeout, or its call cancelled) breaks the
            // barrier, as a timeout does in threading: the rest could never complete.
            waiter.TryWithdraw();
            Break();
            cancellationToken.ThrowIfCancellationRequested();
            throw Broken();
        }

        return waiter.Outcome
            ? new BarrierArrival(index, false, generation)
            : throw Broken();
    }

    public async Task<BarrierSnapshot> CompleteAction(string sessionId, long generation, bool succeeded)
    {
        await Membership.EnsureMember(sessionId);

        // An unknown generation was already settled by a reset or an abort.
        if (_actionRounds.Remove(generation, out var round))
        {
            if (succeeded)
            {
                Release(round.Waiters);
            }
            else
            {
                foreach (var waiter in round.Waiters)
                {
                    waiter.TryComplete(false);
                }

                Break();
            }
        }

        return Snapshot();
    }

    public async Task<BarrierSnapshot> Reset(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        Break();
        _broken = false;
        _generation++;
        return Snapshot();
    }

    public async Task<BarrierSnapshot> Abort(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        Break();
        return Snapshot();
    }

    public async Task<BarrierSnapshot> GetState(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        return Snapshot();
    }

    protected override bool Holds(string sessionId) =>
        _arrivals.HasPending(sessionId)
        || _actionRounds.Values.Any(round => round.ActionSession == sessionId || round.Waiters.HasPending(sessionId));

    public override Task SessionEnded(string sessionId)
    {
        if (Holds(sessionId))
        {
            // threading has no notion of a party dying; the others would wait for it (or
            // its action) forever. Breaking is the choice that never hangs: they get
            // BrokenBarrierError and can reset.
            Log.BarrierBrokenBySession(_logger, Membership.Address.Name, sessionId);
            Break();
        }

        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    private static void Release(List<BarrierWaiter> waiters)
    {
        foreach (var waiter in waiters)
        {
            waiter.TryComplete(true);
        }
    }

    /// <summary>Every waiter, of this generation or awaiting an action, fails.</summary>
    private void Break()
    {
        _broken = true;
        foreach (var waiter in _arrivals)
        {
            waiter.TryComplete(false);
        }

        _arrivals = [];
        foreach (var round in _actionRounds.Values)
        {
            foreach (var waiter in round.Waiters)
            {
                waiter.TryComplete(false);
            }
        }

        _actionRounds.Clear();
    }

    private BarrierSnapshot Snapshot() => new(_parties, _arrivals.Count, _broken);

    private protected override ObjectDetail Inspect(out int waiters)
    {
        // Parties of finished rounds still wait for their action to report.
        waiters = _arrivals.Pending() + _actionRounds.Values.Sum(round => round.Waiters.Pending());
        return new BarrierDetail(_parties, _arrivals.Count, _broken);
    }

    protected override void ResetState()
    {
        _arrivals.EndAll(Membership.NotFound);
        foreach (var round in _actionRounds.Values)
        {
            round.Waiters.EndAll(Membership.NotFound);
        }

        _actionRounds.Clear();
    }

    private static BridgeException Broken() => BridgeException.Precondition("BrokenBarrierError", "barrier is broken");

    private sealed record ActionRound(string ActionSession, List<BarrierWaiter> Waiters);

    /// <summary>Outcome true: released; false: the barrier broke.</summary>
    private sealed class BarrierWaiter(string sessionId) : Waiter<bool>(sessionId);
}
