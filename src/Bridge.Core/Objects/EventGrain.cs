using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>multiprocessing.Event: a flag; Set wakes every waiter.</summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class EventGrain : ObjectGrain, IEventGrain
{
    private readonly ILogger<EventGrain> _logger;
    private readonly LinkedList<EventWaiter> _waiters = new();
    private bool _flag;

    public EventGrain(IGrainFactory grains, ILogger<EventGrain> logger)
        : base(grains, ObjectFamily.Event, "Event", logger)
    {
        _logger = logger;
    }

    public Task Open(string sessionId, OpenMode mode) =>
        Membership.Open(
            sessionId,
            mode,
            mismatch: () => null,
            create: () =>
            {
                _flag = false;
                Log.ObjectCreated(_logger, ObjectFamily.Event, Membership.Address.Name, sessionId);
            });

    public async Task Set(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        _flag = true;
        foreach (var waiter in _waiters)
        {
            waiter.TryComplete(true);
        }

        _waiters.Clear();
    }

    public async Task Clear(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        _flag = false;
    }

    public async Task<bool> IsSet(string sessionId)
    {
        await Membership.EnsureMember(sessionId);
        return _flag;
    }

    public async Task<bool> Wait(string sessionId, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        await Membership.EnsureMember(sessionId);
        if (_flag || timeout == TimeSpan.Zero)
        {
            return _flag;
        }

        var waiter = new EventWaiter(sessionId);
        var node = _waiters.AddLast(waiter);
        if (await waiter.WaitAsync(timeout, cancellationToken))
        {
            return waiter.Outcome;
        }

        waiter.TryWithdraw();
        _waiters.RemoveIfListed(node);
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    protected override bool Holds(string sessionId) => _waiters.HasPending(sessionId);

    public override Task SessionEnded(string sessionId)
    {
        _waiters.EndSession(sessionId);
        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    private protected override ObjectDetail Inspect(out int waiters)
    {
        waiters = _waiters.Pending();
        return new EventDetail(_flag);
    }

    protected override void ResetState()
    {
        _waiters.EndAll(Membership.NotFound);
        _flag = false;
    }

    private sealed class EventWaiter(string sessionId) : Waiter<bool>(sessionId);
}
