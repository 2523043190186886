using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Host.Hosting;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Services;

internal sealed class QueuesService(IGrainFactory grains, IOptions<BridgeHostOptions> options, BridgeMetrics metrics) : Queues.QueuesBase
{
    /// <summary>Prefetch is capped so one reply stays a reasonable message.</summary>
    private const int MaxItemsPerGet = 4096;

    private readonly long _maxPayloadBytes = options.Value.MaxPayloadBytes;

    public override async Task<QueueInfo> CreateQueue(CreateQueueRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        var name = Requests.NameToOpen(request.Name, request.Mode);
        var mode = Requests.Mode(request.Mode, request.Name);
        var kind = mode == Core.Objects.OpenMode.Attach ? QueueKind.Queue : Requests.QueueKindOf(request.Kind);
        var descriptor = await grains.GetGrain<IQueueGrain>(name).Open(sessionId, mode, kind, Math.Max(0, request.Maxsize));
        return new QueueInfo { Name = name, Kind = Requests.WireKind(descriptor.Kind), Maxsize = descriptor.MaxSize };
    }

    public override async Task<PutReply> Put(PutRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var items = Requests.Payloads(request.Items, _maxPayloadBytes);
        var timeout = Requests.Timeout(request.Wait);
        if (request.Reserved < 0 || request.Reserve < 0 || request.Release < 0)
        {
            throw BridgeException.InvalidArgument(
                $"reserved, reserve and release must be >= 0 (got {request.Reserved}, {request.Reserve}, {request.Release})");
        }

        var queue = grains.GetGrain<IQueueGrain>(name);
        if (request.Reserved == 0 && request.Reserve == 0 && request.Release == 0)
        {
            var accepted = items.Items.Count == 0 ? 0 : await queue.Put(sessionId, items, timeout, context.CancellationToken);
            metrics.ItemsPut(accepted);
            return new PutReply { Accepted = accepted };
        }

        var outcome = await queue.PutClaimed(
            sessionId, items, new SlotClaim(request.Reserved, request.Reserve, request.Release), timeout, context.CancellationToken);
        metrics.ItemsPut(outcome.Accepted);
        return new PutReply { Accepted = outcome.Accepted, Reserved = outcome.Reserved };
    }

    public override async Task<GetReply> Get(GetRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        if (request.MaxItems < 1)
        {
            throw BridgeException.InvalidArgument($"max_items must be >= 1 (got {request.MaxItems})");
        }

        if (request.Ack < 0)
        {
            throw BridgeException.InvalidArgument($"ack must be >= 0 (got {request.Ack})");
        }

        var batch = await grains.GetGrain<IQueueGrain>(name).Get(
            sessionId, Math.Min(request.MaxItems, MaxItemsPerGet), request.Ack, Requests.Timeout(request.Wait), context.CancellationToken);
        var reply = new GetReply();
        foreach (var item in batch.Items)
        {
            reply.Items.Add(UnsafeByteOperations.UnsafeWrap(item));
        }

        metrics.ItemsGot(reply.Items.Count);

        return reply;
    }

    public override async Task<AckReply> Ack(AckRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        if (request.Count < 0)
        {
            throw BridgeException.InvalidArgument($"count must be >= 0 (got {request.Count})");
        }

        await grains.GetGrain<IQueueGrain>(name).Ack(sessionId, request.Count);
        return new AckReply();
    }

    public override async Task<QueueState> GetQueueState(QueueStateRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var state = await grains.GetGrain<IQueueGrain>(name).GetState(sessionId);
        return new QueueState { Size = state.Size, Maxsize = state.MaxSize, Leased = state.Leased, UnfinishedTasks = state.UnfinishedTasks, Reserved = state.Reserved };
    }

    public override async Task<TaskDoneReply> TaskDone(TaskDoneRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        if (request.Count < 1)
        {
            throw BridgeException.InvalidArgument($"count must be >= 1 (got {request.Count})");
        }

        await grains.GetGrain<IQueueGrain>(name).TaskDone(sessionId, request.Count);
        return new TaskDoneReply();
    }

    public override async Task<JoinQueueReply> JoinQueue(JoinQueueRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var done = await grains.GetGrain<IQueueGrain>(name).Join(sessionId, Requests.Timeout(request.Wait), context.CancellationToken);
        return new JoinQueueReply { Done = done };
    }
}
