using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>multiprocessing.Event: a flag; Set wakes every waiter.</summary>
[Reentrant]
internal sealed class EventGrain : Grain, IEventGrain
{
    private readonly ObjectMembership _membership;
    private readonly ILogger<EventGrain> _logger;
    private readonly LinkedList<EventWaiter> _waiters = new();
    private bool _flag;

    public EventGrain(IGrainFactory grains, ILogger<EventGrain> logger)
    {
        _logger = logger;
        _membership = new ObjectMembership(
            grains,
            new ObjectAddress(ObjectFamily.Event, this.GetPrimaryKeyString()),
            "Event",
            onCreated: () => DelayDeactivation(Timeout.InfiniteTimeSpan),
            onFreed: Free);
    }

    public Task Open(string sessionId, OpenMode mode) =>
        _membership.Open(
            sessionId,
            mode,
            mismatch: () => null,
            create: () =>
            {
                _flag = false;
                Log.ObjectCreated(_logger, ObjectFamily.Event, _membership.Address.Name, sessionId);
            });

    public async Task Set(string sessionId)
    {
        await _membership.EnsureMember(sessionId);
        _flag = true;
        foreach (var waiter in _waiters)
        {
            waiter.TryComplete(true);
        }

        _waiters.Clear();
    }

    public async Task Clear(string sessionId)
    {
        await _membership.EnsureMember(sessionId);
        _flag = false;
    }

    public async Task<bool> IsSet(string sessionId)
    {
        await _membership.EnsureMember(sessionId);
        return _flag;
    }

    public async Task<bool> Wait(string sessionId, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        WaitTimeouts.Check(timeout);
        await _membership.EnsureMember(sessionId);
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
        _waiters.Remove(node);
        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    public Task SessionEnded(string sessionId)
    {
        _waiters.EndSession(sessionId);
        _membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }

    public Task Detach(string sessionId)
    {
        _membership.Leave(sessionId, ended: false);
        return Task.CompletedTask;
    }

    private void Free()
    {
        _waiters.Clear();
        _flag = false;
        Log.ObjectFreed(_logger, ObjectFamily.Event, _membership.Address.Name);
        DelayDeactivation(TimeSpan.Zero);
        if (!_membership.IsAttaching)
        {
            this.DeactivateOnIdle();
        }
    }

    private sealed class EventWaiter(string sessionId) : Waiter<bool>(sessionId);
}
