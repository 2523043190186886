using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Grpc.Core;

namespace Bridge.Host.Services;

internal sealed class SynchronizationService(IGrainFactory grains) : Synchronization.SynchronizationBase
{
    public override async Task<LockInfo> CreateLock(CreateLockRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        var name = Requests.NameToOpen(request.Name, request.Mode);
        var kind = request.Mode == Contracts.V1.OpenMode.Attach ? LockKind.Lock : Requests.LockKindOf(request.Kind);
        if (kind is LockKind.Semaphore or LockKind.BoundedSemaphore && request.InitialValue < 0)
        {
            throw BridgeException.InvalidArgument($"semaphore initial value must be >= 0 (got {request.InitialValue})");
        }

        var descriptor = await grains.GetGrain<ILockGrain>(name)
            .Open(sessionId, Requests.Mode(request.Mode, request.Name), kind, request.InitialValue);
        return new LockInfo { Name = name, Kind = Requests.WireKind(descriptor.Kind), InitialValue = descriptor.InitialValue };
    }

    public override async Task<AcquireReply> Acquire(AcquireRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        if (request.Count < 0)
        {
            throw BridgeException.InvalidArgument($"count must be >= 0 (got {request.Count})");
        }

        var grant = await grains.GetGrain<ILockGrain>(name).AcquireGrant(
            sessionId, Requests.Owner(request.Owner), Math.Max(1, request.Count), Requests.Timeout(request.Wait), request.Cacheable, context.CancellationToken);
        return new AcquireReply { Acquired = grant.Acquired, CacheToken = grant.CacheToken };
    }

    public override async Task<ReleaseReply> Release(ReleaseRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        await grains.GetGrain<ILockGrain>(name).Release(sessionId, Requests.Owner(request.Owner), context.CancellationToken);
        return new ReleaseReply();
    }

    public override async Task<LockState> GetLockState(LockStateRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var state = await grains.GetGrain<ILockGrain>(name).GetState(sessionId, Requests.Owner(request.Owner));
        return new LockState { Value = state.Value, OwnedByCaller = state.OwnedByCaller, Count = state.Count, Cached = state.Cached };
    }

    public override async Task<SurrenderLockReply> SurrenderLock(SurrenderLockRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        if (request.Count < 0)
        {
            throw BridgeException.InvalidArgument($"count must be >= 0 (got {request.Count})");
        }

        var applied = await grains.GetGrain<ILockGrain>(name)
            .Surrender(sessionId, request.CacheToken, request.Held, Requests.Owner(request.Owner), request.Count);
        return new SurrenderLockReply { Applied = applied };
    }

    public override async Task<EventInfo> CreateEvent(CreateEventRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        var name = Requests.NameToOpen(request.Name, request.Mode);
        await grains.GetGrain<IEventGrain>(name).Open(sessionId, Requests.Mode(request.Mode, request.Name));
        return new EventInfo { Name = name };
    }

    public override async Task<EventReply> SetEvent(EventRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        await grains.GetGrain<IEventGrain>(name).Set(sessionId);
        return new EventReply { IsSet = true };
    }

    public override async Task<EventReply> ClearEvent(EventRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        await grains.GetGrain<IEventGrain>(name).Clear(sessionId);
        return new EventReply { IsSet = false };
    }

    public override async Task<EventReply> IsEventSet(EventRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        return new EventReply { IsSet = await grains.GetGrain<IEventGrain>(name).IsSet(sessionId) };
    }

    public override async Task<EventReply> WaitEvent(WaitEventRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var isSet = await grains.GetGrain<IEventGrain>(name).Wait(sessionId, Requests.Timeout(request.Wait), context.CancellationToken);
        return new EventReply { IsSet = isSet };
    }

    public override async Task<ConditionInfo> CreateCondition(CreateConditionRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        var name = Requests.NameToOpen(request.Name, request.Mode);
        var mode = Requests.Mode(request.Mode, request.Name);
        var lockName = request.LockName;
        var lockKind = LockKind.RLock;
        if (mode != Core.Objects.OpenMode.Attach && !string.IsNullOrEmpty(lockName))
        {
            ObjectNames.Validate(lockName, creating: false);
            lockKind = Requests.LockKindOf(request.LockKind);
        }

        var descriptor = await grains.GetGrain<IConditionGrain>(name).Open(sessionId, mode, lockName, lockKind);
        return new ConditionInfo { Name = name, LockName = descriptor.LockName, LockKind = Requests.WireKind(descriptor.LockKind) };
    }

    public override async Task<WaitConditionReply> WaitCondition(WaitConditionRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var outcome = await grains.GetGrain<IConditionGrain>(name)
            .Wait(sessionId, Requests.Owner(request.Owner), Requests.Timeout(request.Wait), context.CancellationToken);
        return new WaitConditionReply { Notified = outcome.Notified, SavedCount = outcome.SavedCount };
    }

    public override async Task<NotifyReply> Notify(NotifyRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var woken = await grains.GetGrain<IConditionGrain>(name).Notify(sessionId, Requests.Owner(request.Owner), request.N);
        return new NotifyReply { Woken = woken };
    }

    public override async Task<BarrierInfo> CreateBarrier(CreateBarrierRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        var name = Requests.NameToOpen(request.Name, request.Mode);
        var mode = Requests.Mode(request.Mode, request.Name);
        if (mode != Core.Objects.OpenMode.Attach && request.Parties <= 0)
        {
            throw BridgeException.InvalidArgument($"parties must be > 0 (got {request.Parties})");
        }

        var parties = await grains.GetGrain<IBarrierGrain>(name).Open(sessionId, mode, request.Parties);
        return new BarrierInfo { Name = name, Parties = parties };
    }

    public override async Task<WaitBarrierReply> WaitBarrier(WaitBarrierRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var arrival = await grains.GetGrain<IBarrierGrain>(name)
            .Wait(sessionId, Requests.Timeout(request.Wait), request.HasAction, context.CancellationToken);
        return new WaitBarrierReply { Index = arrival.Index, RunAction = arrival.RunAction, Generation = arrival.Generation };
    }

    public override async Task<BarrierState> CompleteBarrierAction(CompleteBarrierActionRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        return State(await grains.GetGrain<IBarrierGrain>(name).CompleteAction(sessionId, request.Generation, request.Succeeded));
    }

    public override async Task<BarrierState> ResetBarrier(BarrierRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        return State(await grains.GetGrain<IBarrierGrain>(name).Reset(sessionId));
    }

    public override async Task<BarrierState> AbortBarrier(BarrierRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        return State(await grains.GetGrain<IBarrierGrain>(name).Abort(sessionId));
    }

    public override async Task<BarrierState> GetBarrierState(BarrierRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        return State(await grains.GetGrain<IBarrierGrain>(name).GetState(sessionId));
    }

    private static BarrierState State(BarrierSnapshot snapshot) =>
        new() { Parties = snapshot.Parties, NWaiting = snapshot.Waiting, Broken = snapshot.Broken };
}
