using System.Diagnostics;
using Bridge.Core.Objects;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Sessions;

/// <summary>
/// One client process: a lease checked by a timer and the objects it attached to. When it
/// ends (goodbye or lapsed lease) every attached object hears SessionEnded. The activation
/// keeps answering "ended" until it deactivates; a fresh activation of an unknown id has
/// never started, which callers see as the same SessionEnded error.
/// </summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class SessionGrain : Grain, ISessionGrain
{
    // Lease lapses are noticed within this; short enough for tests with 1 s leases.
    private static readonly TimeSpan LeaseCheckPeriod = TimeSpan.FromMilliseconds(500);

    private readonly SessionTracker _tracker;
    private readonly IGrainFactory _grains;
    private readonly ILogger<SessionGrain> _logger;
    private readonly string _silo;
    private readonly HashSet<ObjectAddress> _attached = [];
    private SessionPhase _phase;
    private TimeSpan _lease;
    private long _renewedAt;
    private IGrainTimer? _leaseTimer;
    private Task _ending = Task.CompletedTask;

    // The push channel (Sessions.Watch): events wait here until the current watcher pulls
    // them; _eventsArrived wakes a pull waiting for the first one.
    private readonly Queue<LockRecall> _events = new();
    private TaskCompletionSource? _eventsArrived;
    private long _watchGeneration;

    public SessionGrain(SessionTracker tracker, IGrainFactory grains, ILocalSiloDetails silo, ILogger<SessionGrain> logger)
    {
        _tracker = tracker;
        _grains = grains;
        _silo = silo.SiloAddress.ToParsableString();
        _logger = logger;
    }

    private string Id => this.GetPrimaryKeyString();

    public Task Start(SessionStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        switch (_phase)
        {
            case SessionPhase.Ended:
                throw BridgeException.SessionEnded(Id);
            case SessionPhase.Active:
                // A retried Start: the session is already running.
                Renew();
                return Task.CompletedTask;
        }

        if (start.Lease <= TimeSpan.Zero)
        {
            throw BridgeException.InvalidArgument($"session lease must be positive, got {start.Lease}");
        }

        _phase = SessionPhase.Active;
        _lease = start.Lease;
        Renew();

        // The session lives until its lease lapses, however idle it is.
        DelayDeactivation(Timeout.InfiniteTimeSpan);
        _leaseTimer = this.RegisterGrainTimer(
            CheckLease,
            new GrainTimerCreationOptions(LeaseCheckPeriod, LeaseCheckPeriod) { Interleave = true });
        _tracker.Started(Id, start);
        Log.SessionStarted(_logger, Id, start.ClientName, start.Pid, start.Language, start.Lease);
        return Task.CompletedTask;
    }

    public Task KeepAlive()
    {
        ThrowUnlessActive();
        Renew();
        return Task.CompletedTask;
    }

    public Task<SessionAttachment> Attached(ObjectAddress address)
    {
        ThrowUnlessActive();
        var added = _attached.Add(address);
        _tracker.ObjectsChanged(Id, _attached.Count);
        return Task.FromResult(new SessionAttachment(added, _silo));
    }

    public Task Detached(ObjectAddress address)
    {
        _attached.Remove(address);
        _tracker.ObjectsChanged(Id, _attached.Count);
        return Task.CompletedTask;
    }

    public Task End()
    {
        switch (_phase)
        {
            case SessionPhase.NeverStarted:
                // Nothing to release; remember the goodbye so a late Start cannot revive it.
                _phase = SessionPhase.Ended;
                this.DeactivateOnIdle();
                return Task.CompletedTask;
            case SessionPhase.Active:
                _ending = EndActive("goodbye");
                return _ending;
            default:
                // A second goodbye (or one racing the lease check) waits for the first.
                return _ending;
        }
    }

    public Task Post(LockRecall recall)
    {
        if (_phase == SessionPhase.Active)
        {
            _events.Enqueue(recall);
            WakeWatcher();
        }

        return Task.CompletedTask;
    }

    public Task<long> Watch()
    {
        ThrowUnlessActive();
        _watchGeneration++;
        WakeWatcher(); // a pull of the previous watch returns Superseded
        return Task.FromResult(_watchGeneration);
    }

    public async Task<SessionEventBatch> NextEvents(long generation, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(maxWait.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            ThrowUnlessActive();
            if (generation != _watchGeneration)
            {
                return SessionEventBatch.SupersededBatch;
            }

            if (_events.Count > 0)
            {
                var recalls = _events.ToArray();
                _events.Clear();
                return new SessionEventBatch(false, recalls);
            }

            var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (left <= TimeSpan.Zero)
            {
                return SessionEventBatch.Empty;
            }

            var arrived = _eventsArrived ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            try
            {
                await arrived.Task.WaitAsync(left, cancellationToken);
            }
            catch (TimeoutException)
            {
                return SessionEventBatch.Empty;
            }
        }
    }

    private void WakeWatcher()
    {
        var arrived = _eventsArrived;
        _eventsArrived = null;
        arrived?.TrySetResult();
    }

    private Task CheckLease(CancellationToken cancellationToken)
    {
        if (_phase == SessionPhase.Active && Stopwatch.GetElapsedTime(_renewedAt) > _lease)
        {
            _ending = EndActive("lease lapsed");
        }

        return Task.CompletedTask;
    }

    private async Task EndActive(string reason)
    {
        _phase = SessionPhase.Ended;
        _leaseTimer?.Dispose();
        _leaseTimer = null;
        var objects = _attached.ToArray();
        _attached.Clear();
        _events.Clear();
        WakeWatcher(); // its pull fails with SessionEnded
        Log.SessionEnding(_logger, Id, reason, objects.Length);

        await Task.WhenAll(objects.Select(TellEnded));

        _tracker.Ended(Id);
        this.DeactivateOnIdle();
    }

    private async Task TellEnded(ObjectAddress address)
    {
        try
        {
            await ObjectGrains.Get(_grains, address).SessionEnded(Id);
        }
        catch (Exception e)
        {
            // One object failing must not keep the others from releasing this session.
            Log.SessionEndNotifyFailed(_logger, e, Id, address.Family, address.Name);
        }
    }

    private void Renew() => _renewedAt = Stopwatch.GetTimestamp();

    private void ThrowUnlessActive()
    {
        if (_phase != SessionPhase.Active)
        {
            throw BridgeException.SessionEnded(Id);
        }
    }

    private enum SessionPhase
    {
        NeverStarted,
        Active,
        Ended,
    }
}
