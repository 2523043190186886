using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Host.Execution;
using Grpc.Core;

namespace Bridge.Host.Services;

internal sealed class ExecutionService(PoolRegistry pools, WorkerLauncher launcher) : Contracts.V1.Execution.ExecutionBase
{
    public override Task<PoolInfo> CreatePool(CreatePoolRequest request, ServerCallContext context)
    {
        Requests.Session(request.SessionId);
        return pools.CreateAsync(request, context.CancellationToken);
    }

    public override Task<SubmitTasksReply> SubmitTasks(SubmitTasksRequest request, ServerCallContext context)
    {
        var pool = pools.Get(Requests.Session(request.SessionId), Requests.Pool(request.PoolId));
        PoolRegistry.ValidateTasks(request.Tasks);
        pool.Submit(request.Tasks);
        return Task.FromResult(new SubmitTasksReply());
    }

    public override async Task WatchPool(WatchPoolRequest request, IServerStreamWriter<PoolEvent> responseStream, ServerCallContext context)
    {
        var pool = pools.Get(Requests.Session(request.SessionId), Requests.Pool(request.PoolId));
        if (!pool.TryWatch())
        {
            throw BridgeException.Precondition("RuntimeError", $"pool '{request.PoolId}' is already being watched");
        }

        try
        {
            await foreach (var poolEvent in pool.Events.ReadAllAsync(context.CancellationToken))
            {
                await responseStream.WriteAsync(poolEvent, context.CancellationToken);
            }

            pools.Forget(pool);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The owner went away: nobody can collect the results, so stop the work.
            pools.Terminate(pool);
            throw;
        }
    }

    public override Task<PoolState> ClosePool(PoolRequest request, ServerCallContext context) =>
        Task.FromResult(pools.Close(pools.Get(Requests.Session(request.SessionId), Requests.Pool(request.PoolId))));

    public override Task<PoolState> TerminatePool(PoolRequest request, ServerCallContext context) =>
        Task.FromResult(pools.Terminate(pools.Get(Requests.Session(request.SessionId), Requests.Pool(request.PoolId))));

    public override Task<PoolState> GetPoolState(PoolRequest request, ServerCallContext context) =>
        Task.FromResult(pools.Get(Requests.Session(request.SessionId), Requests.Pool(request.PoolId)).State());

    public override Task<PoolState> SignalWorker(SignalWorkerRequest request, ServerCallContext context)
    {
        var pool = pools.Get(Requests.Session(request.SessionId), Requests.Pool(request.PoolId));
        if (request.Signal is not (Signals.Terminate or Signals.Kill or 2))
        {
            throw BridgeException.InvalidArgument($"signal {request.Signal} is not one of 2 (SIGINT), 9 (SIGKILL), 15 (SIGTERM)");
        }

        if (!pool.Owns(request.Pid))
        {
            throw BridgeException.NotFound($"process {request.Pid} is not a live worker of pool '{request.PoolId}'");
        }

        Signals.Send(request.Pid, request.Signal);
        return Task.FromResult(pool.State());
    }

    public override async Task Work(IAsyncStreamReader<WorkerMessage> requestStream, IServerStreamWriter<WorkerCommand> responseStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken) || requestStream.Current.MessageCase != WorkerMessage.MessageOneofCase.Hello)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "a worker's first message must be hello"));
        }

        var hello = requestStream.Current.Hello;
        var worker = launcher.FindByToken(hello.WorkerToken);
        if (worker is null || worker.Pid != hello.Pid)
        {
            // The caller did not prove it is a worker this host started: it cannot be identified.
            throw new RpcException(new Status(StatusCode.Unauthenticated, "unknown worker token"));
        }

        worker.KernelSlots = Math.Max(1, hello.KernelSlots);
        // Written before the pump starts (commands stay in order): the worker receives its
        // first response and message while idle, instead of when its first pool is waiting
        // (~25 ms of one-time JIT and type loading in a fresh worker, measured with perf).
        await responseStream.WriteAsync(new WorkerCommand(), context.CancellationToken);
        worker.MarkConnected();
        var writer = PumpCommandsAsync(worker, responseStream, context.CancellationToken);
        try
        {
            await ReadWorkerMessagesAsync(worker, requestStream, context.CancellationToken);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The worker died or the host is stopping: its process exit tells the pool.
        }

        worker.Commands.Writer.TryComplete();
        try
        {
            await writer;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            // Same: the stream is gone.
        }
    }

    private async Task ReadWorkerMessagesAsync(WorkerProcess worker, IAsyncStreamReader<WorkerMessage> requestStream, CancellationToken cancellationToken)
    {
        while (await requestStream.MoveNext(cancellationToken))
        {
            var message = requestStream.Current;
            switch (message.MessageCase)
            {
                case WorkerMessage.MessageOneofCase.Ready:
                    worker.Pool?.OnReady(worker, message.Ready.Slots);
                    break;
                case WorkerMessage.MessageOneofCase.Result:
                    worker.Pool?.OnResult(worker, message.Result);
                    break;
                case WorkerMessage.MessageOneofCase.Output:
                    if (!worker.TryHoldOutput(message.Output))
                    {
                        worker.Pool?.OnOutput(message.Output);
                    }

                    break;
                case WorkerMessage.MessageOneofCase.Released when message.Released:
                    pools.OnWorkerReleased(worker);
                    break;
                case WorkerMessage.MessageOneofCase.ProcessExit:
                    worker.ReportExitCode(message.ProcessExit.ExitCode);
                    break;
            }
        }
    }

    private static async Task PumpCommandsAsync(WorkerProcess worker, IServerStreamWriter<WorkerCommand> stream, CancellationToken cancellationToken)
    {
        await foreach (var command in worker.Commands.Reader.ReadAllAsync(cancellationToken))
        {
            await stream.WriteAsync(command, cancellationToken);
        }
    }
}
