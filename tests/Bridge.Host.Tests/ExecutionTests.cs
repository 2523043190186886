using Bridge.Client;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Grpc.Core;
using MessagePack;

namespace Bridge.Host.Tests;

/// <summary>
/// Pools through a real host with real Bridge.Worker processes, from C# only: C# kernels
/// need no Python, so these run without an interpreter in the worker.
/// </summary>
public sealed class ExecutionTests(HostFixture fixture) : IClassFixture<HostFixture>, IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(80));

    [Fact(Timeout = 90_000)]
    public async Task A_kernel_pool_maps_primes_and_releases_its_workers_after_close()
    {
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests", _timeout.Token);
        var execution = new Bridge.Contracts.V1.Execution.ExecutionClient(CreateChannel());
        var pool = await execution.CreatePoolAsync(new CreatePoolRequest { SessionId = session.SessionId, Processes = 2, Name = "primes" }, cancellationToken: _timeout.Token);
        Assert.Equal(2, pool.WorkerPids.Count);

        var submit = new SubmitTasksRequest { SessionId = session.SessionId, PoolId = pool.PoolId };
        for (var i = 0; i < 4; i++)
        {
            var chunk = new TaskChunk { TaskId = i, Function = new Callable { Kernel = "Bridge.Kernels.Primes.Count" }, Style = CallStyle.Starmap };
            chunk.Items.Add(Payload(new long[] { i * 250_000L, (i + 1) * 250_000L }));
            submit.Tasks.Add(chunk);
        }

        await execution.SubmitTasksAsync(submit, cancellationToken: _timeout.Token);
        using var watch = execution.WatchPool(new WatchPoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
        var total = 0L;
        var results = 0;
        var released = 0;
        await foreach (var poolEvent in watch.ResponseStream.ReadAllAsync(_timeout.Token))
        {
            if (poolEvent.EventCase == PoolEvent.EventOneofCase.Result)
            {
                Assert.Null(poolEvent.Result.Error);
                total += MessagePackSerializer.Deserialize<long>(poolEvent.Result.Values[0].Memory);
                if (++results == 4)
                {
                    await execution.ClosePoolAsync(new PoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
                }
            }
            else if (poolEvent.EventCase == PoolEvent.EventOneofCase.WorkerExit)
            {
                Assert.Fail($"worker {poolEvent.WorkerExit.Pid} exited (code {poolEvent.WorkerExit.ExitCode}) instead of being released");
            }
            else if (poolEvent.EventCase == PoolEvent.EventOneofCase.WorkerReleased)
            {
                Assert.Contains(poolEvent.WorkerReleased, pool.WorkerPids);
                released++;
            }
        }

        Assert.Equal(78_498, total);
        // Both workers leave the closed pool alive and the stream ends: they are reused.
        Assert.Equal(2, released);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_worker_killed_mid_task_fails_that_task_and_is_replaced()
    {
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests", _timeout.Token);
        var execution = new Bridge.Contracts.V1.Execution.ExecutionClient(CreateChannel());
        var pool = await execution.CreatePoolAsync(new CreatePoolRequest { SessionId = session.SessionId, Processes = 1 }, cancellationToken: _timeout.Token);
        var victim = pool.WorkerPids[0];
        using var watch = execution.WatchPool(new WatchPoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
        await execution.SubmitTasksAsync(Task(session, pool, 1, "Bridge.Kernels.Timing.Sleep", 60.0), cancellationToken: _timeout.Token);

        await WaitUntilRunningAsync(execution, session, pool);
        await execution.SignalWorkerAsync(new SignalWorkerRequest { SessionId = session.SessionId, PoolId = pool.PoolId, Pid = victim, Signal = 9 }, cancellationToken: _timeout.Token);

        var events = watch.ResponseStream;
        Assert.True(await events.MoveNext(_timeout.Token));
        Assert.Equal(1, events.Current.Result.TaskId);
        Assert.True(events.Current.Result.Error.WorkerDied);
        Assert.True(await events.MoveNext(_timeout.Token));
        Assert.Equal(new WorkerExit { Pid = victim, ExitCode = -9 }, events.Current.WorkerExit);
        Assert.True(await events.MoveNext(_timeout.Token));
        var replacement = events.Current.WorkerStarted;
        Assert.NotEqual(victim, replacement);

        await execution.SubmitTasksAsync(Task(session, pool, 2, "Bridge.Kernels.Primes.Count", 0L, 100L), cancellationToken: _timeout.Token);
        Assert.True(await events.MoveNext(_timeout.Token));
        Assert.Equal(25, MessagePackSerializer.Deserialize<long>(events.Current.Result.Values[0].Memory));
        Assert.Equal(replacement, events.Current.Result.WorkerPid);
        await execution.TerminatePoolAsync(new PoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
    }

    [Fact(Timeout = 90_000)]
    public async Task Bad_pool_requests_are_rejected_and_a_dead_owner_terminates_its_pool()
    {
        var execution = new Bridge.Contracts.V1.Execution.ExecutionClient(CreateChannel());
        await using (var session = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests", _timeout.Token))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => execution.CreatePoolAsync(
                new CreatePoolRequest { SessionId = session.SessionId, Processes = 0 }, cancellationToken: _timeout.Token).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);

            var pool = await execution.CreatePoolAsync(new CreatePoolRequest { SessionId = session.SessionId, Processes = 1 }, cancellationToken: _timeout.Token);
            var noFunction = new SubmitTasksRequest { SessionId = session.SessionId, PoolId = pool.PoolId };
            noFunction.Tasks.Add(new TaskChunk { TaskId = 1 });
            Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() =>
                execution.SubmitTasksAsync(noFunction, cancellationToken: _timeout.Token).ResponseAsync)).StatusCode);
            await execution.SubmitTasksAsync(Task(session, pool, 2, "Bridge.Kernels.Timing.Sleep", 60.0), cancellationToken: _timeout.Token);
            await WaitUntilRunningAsync(execution, session, pool);
            var worker = System.Diagnostics.Process.GetProcessById(pool.WorkerPids[0]);

            // Goodbye ends the session; its pool and worker must not outlive it.
            await session.DisposeAsync();
            using var exited = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await worker.WaitForExitAsync(exited.Token);
            var gone = await Assert.ThrowsAsync<RpcException>(() => execution.GetPoolStateAsync(
                new PoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        }
    }

    public void Dispose() => _timeout.Dispose();

    private static SubmitTasksRequest Task(BridgeSession session, PoolInfo pool, long id, string kernel, params object[] args)
    {
        var chunk = new TaskChunk { TaskId = id, Function = new Callable { Kernel = kernel }, Style = CallStyle.Starmap };
        chunk.Items.Add(Payload(args));
        var request = new SubmitTasksRequest { SessionId = session.SessionId, PoolId = pool.PoolId };
        request.Tasks.Add(chunk);
        return request;
    }

    private static ByteString Payload<T>(T value) => UnsafeByteOperations.UnsafeWrap(MessagePackSerializer.Serialize(value));

    private async Task WaitUntilRunningAsync(Bridge.Contracts.V1.Execution.ExecutionClient execution, BridgeSession session, PoolInfo pool)
    {
        while ((await execution.GetPoolStateAsync(new PoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token)).TasksRunning == 0)
        {
            await System.Threading.Tasks.Task.Delay(20, _timeout.Token);
        }
    }

    private Grpc.Net.Client.GrpcChannel CreateChannel() => fixture.Host.Address.CreateChannel();
}
