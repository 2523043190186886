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
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
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

            // A task with CreatePool: only a process-mode pool's, and named by its function as SubmitTasks wants.
            var tasksWithoutProcessMode = new CreatePoolRequest { SessionId = session.SessionId, Processes = 1 };
            tasksWithoutProcessMode.Tasks.Add(Task(session, new PoolInfo(), 1, "Bridge.Kernels.Primes.Count", 0L, 10L).Tasks);
            var processTaskWithoutFunction = new CreatePoolRequest { SessionId = session.SessionId, Processes = 1, ProcessMode = true };
            processTaskWithoutFunction.Tasks.Add(new TaskChunk { TaskId = 1, Style = CallStyle.RunProcess });
            foreach (var request in new[] { tasksWithoutProcessMode, processTaskWithoutFunction })
            {
                Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() =>
                    execution.CreatePoolAsync(request, cancellationToken: _timeout.Token).ResponseAsync)).StatusCode);
            }

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

    [Fact(Timeout = 90_000)]
    public async Task A_pool_named_in_ends_pools_is_terminated_first_and_only_by_its_own_session()
    {
        var execution = new Bridge.Contracts.V1.Execution.ExecutionClient(CreateChannel());
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests", _timeout.Token);
        await using var stranger = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests-other", _timeout.Token);
        var busy = await execution.CreatePoolAsync(new CreatePoolRequest { SessionId = session.SessionId, Processes = 1 }, cancellationToken: _timeout.Token);
        await execution.SubmitTasksAsync(Task(session, busy, 1, "Bridge.Kernels.Timing.Sleep", 60.0), cancellationToken: _timeout.Token);
        await WaitUntilRunningAsync(execution, session, busy);
        var worker = System.Diagnostics.Process.GetProcessById(busy.WorkerPids[0]);

        // Malformed or too many ids are refused before anything is ended.
        foreach (var ids in new[] { new[] { "not/an id" }, Enumerable.Range(0, 65).Select(i => $"p{i}").ToArray() })
        {
            var request = new CreatePoolRequest { SessionId = session.SessionId, Processes = 1 };
            request.EndsPools.Add(ids);
            Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() =>
                execution.CreatePoolAsync(request, cancellationToken: _timeout.Token).ResponseAsync)).StatusCode);
        }

        // Another session cannot end it; an unknown id is skipped.
        var strangers = new CreatePoolRequest { SessionId = stranger.SessionId, Processes = 1 };
        strangers.EndsPools.Add([busy.PoolId, "0123456789abcdef0123456789abcdef"]);
        var other = await execution.CreatePoolAsync(strangers, cancellationToken: _timeout.Token);
        var state = await execution.GetPoolStateAsync(new PoolRequest { SessionId = session.SessionId, PoolId = busy.PoolId }, cancellationToken: _timeout.Token);
        Assert.False(state.Closed);
        Assert.Equal(1, state.TasksRunning);
        await execution.TerminatePoolAsync(new PoolRequest { SessionId = stranger.SessionId, PoolId = other.PoolId }, cancellationToken: _timeout.Token);

        // Its own session's next CreatePool ends it as TerminatePool would: the worker
        // running its task is stopped.
        var next = new CreatePoolRequest { SessionId = session.SessionId, Processes = 1 };
        next.EndsPools.Add(busy.PoolId);
        var created = await execution.CreatePoolAsync(next, cancellationToken: _timeout.Token);
        Assert.DoesNotContain(worker.Id, created.WorkerPids);
        using var exited = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await worker.WaitForExitAsync(exited.Token);
        try
        {
            state = await execution.GetPoolStateAsync(new PoolRequest { SessionId = session.SessionId, PoolId = busy.PoolId }, cancellationToken: _timeout.Token);
            Assert.True(state.Closed);
        }
        catch (RpcException gone) when (gone.StatusCode == StatusCode.NotFound)
        {
            // Finished and forgotten: as ended as it gets.
        }

        await execution.TerminatePoolAsync(new PoolRequest { SessionId = session.SessionId, PoolId = created.PoolId }, cancellationToken: _timeout.Token);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_direct_pool_is_fed_over_the_workers_data_sockets_and_only_with_its_token()
    {
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests", _timeout.Token);
        var execution = new Bridge.Contracts.V1.Execution.ExecutionClient(CreateChannel());
        var invalid = await Assert.ThrowsAsync<RpcException>(() => execution.CreatePoolAsync(
            new CreatePoolRequest { SessionId = session.SessionId, Processes = 1, Direct = true, MaxTasksPerChild = 1 }, cancellationToken: _timeout.Token).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);

        var pool = await execution.CreatePoolAsync(new CreatePoolRequest { SessionId = session.SessionId, Processes = 1, Direct = true, Name = "direct" }, cancellationToken: _timeout.Token);
        var worker = Assert.Single(pool.Workers);
        Assert.Equal(pool.WorkerPids[0], worker.Pid);
        Assert.StartsWith("unix:", worker.DataAddress, StringComparison.Ordinal);
        Assert.Equal(32, pool.DataToken.Length);
        // Private to the user, beside the host's socket in its 0700 directory.
        var socketPath = worker.DataAddress["unix:".Length..];
        Assert.Equal(Path.GetDirectoryName(fixture.Host.SocketPath), Path.GetDirectoryName(socketPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socketPath));

        // The host does not take a direct pool's chunks.
        var refused = await Assert.ThrowsAsync<RpcException>(() =>
            execution.SubmitTasksAsync(Task(session, pool, 1, "Bridge.Kernels.Primes.Count", 0L, 100L), cancellationToken: _timeout.Token).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);

        // A connection with another token is closed without a frame (after the worker's
        // bounded wait for a matching assignment).
        using (var stranger = await ConnectDataAsync(worker.DataAddress, new string('0', 32)))
        {
            Assert.Null(await ReadFrameAsync(stranger));
        }

        using var data = await ConnectDataAsync(worker.DataAddress, pool.DataToken);
        Assert.True((await ReadFrameAsync(data))!.Ready.Slots >= 1);
        var chunk = new TaskChunk { TaskId = 7, Function = new Callable { Kernel = "Bridge.Kernels.Primes.Count" }, Style = CallStyle.Starmap };
        chunk.Items.Add(Payload(new long[] { 0, 100 }));
        await WriteFrameAsync(data, new DataFrame { Task = chunk });
        DataFrame? answer;
        do
        {
            answer = await ReadFrameAsync(data);
        }
        while (answer is { FrameCase: DataFrame.FrameOneofCase.Ready });

        Assert.Equal(7, answer!.Result.TaskId);
        Assert.Null(answer.Result.Error);
        Assert.Equal(25, MessagePackSerializer.Deserialize<long>(answer.Result.Values[0].Memory));

        // Closing releases the worker: it ends the data connection, and the pool finishes.
        await execution.ClosePoolAsync(new PoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
        while (await ReadFrameAsync(data) is { } _)
        {
        }

        using var watch = execution.WatchPool(new WatchPoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
        var released = 0;
        await foreach (var poolEvent in watch.ResponseStream.ReadAllAsync(_timeout.Token))
        {
            released += poolEvent.EventCase == PoolEvent.EventOneofCase.WorkerReleased ? 1 : 0;
        }

        Assert.Equal(1, released);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_python_workers_main_thread_reads_frames_split_across_writes_joined_in_one_and_larger_than_its_buffer()
    {
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "execution-tests", _timeout.Token);
        var execution = new Bridge.Contracts.V1.Execution.ExecutionClient(CreateChannel());
        var python = Environment.GetEnvironmentVariable("GILBRIDGE_PYTHON");
        var environment = new PythonEnvironment { Executable = string.IsNullOrEmpty(python) ? Path.Combine(HostProcess.RepositoryRoot(), ".venv", "bin", "python") : python };
        // The worker's sys.path is exactly the pool's: the interpreter's own, as it reports it.
        using (var report = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(environment.Executable, ["-c", "import json, sys; print(json.dumps(sys.path[1:]))"]) { RedirectStandardOutput = true })!)
        {
            environment.SysPath.Add(System.Text.Json.JsonSerializer.Deserialize<string[]>(await report.StandardOutput.ReadToEndAsync(_timeout.Token))!);
            await report.WaitForExitAsync(_timeout.Token);
        }

        var request = new CreatePoolRequest { SessionId = session.SessionId, Processes = 1, Direct = true, Name = "frames", Python = environment };
        var pool = await execution.CreatePoolAsync(request, cancellationToken: _timeout.Token);
        using var data = await ConnectDataAsync(Assert.Single(pool.Workers).DataAddress, pool.DataToken);
        Assert.True((await ReadFrameAsync(data))!.Ready.Slots >= 1);

        // builtins.len, pickled by reference; each chunk maps it over one bytes item.
        var length = new Callable { Python = ByteString.CopyFromUtf8("cbuiltins\nlen\n.") };
        byte[] Frame(int taskId, int size)
        {
            var chunk = new TaskChunk { TaskId = taskId, Function = length, Style = CallStyle.Map };
            chunk.Items.Add(ByteString.CopyFrom(MessagePackSerializer.Serialize(new byte[size])));
            var body = new DataFrame { Task = chunk }.ToByteArray();
            return [.. BitConverter.GetBytes(body.Length), .. body];
        }

        // One frame in three writes (inside the header, then inside the body), then two
        // frames in one write, the second over the worker's 64 KiB receive buffer.
        var split = Frame(1, 10);
        foreach (var (start, count) in new[] { (0, 2), (2, 8), (10, split.Length - 10) })
        {
            await data.WriteAsync(split.AsMemory(start, count), _timeout.Token);
            await data.FlushAsync(_timeout.Token);
            await System.Threading.Tasks.Task.Delay(100, _timeout.Token);
        }

        await data.WriteAsync((byte[])[.. Frame(2, 20), .. Frame(3, 300_000)], _timeout.Token);
        var lengths = new Dictionary<long, long>();
        while (lengths.Count < 3 && await ReadFrameAsync(data) is { } frame)
        {
            if (frame.FrameCase == DataFrame.FrameOneofCase.Result)
            {
                Assert.Null(frame.Result.Error);
                lengths[frame.Result.TaskId] = MessagePackSerializer.Deserialize<long>(frame.Result.Values[0].Memory);
            }
        }

        Assert.Equal(new Dictionary<long, long> { [1] = 10, [2] = 20, [3] = 300_000 }, lengths);
        await execution.TerminatePoolAsync(new PoolRequest { SessionId = session.SessionId, PoolId = pool.PoolId }, cancellationToken: _timeout.Token);
    }

    public void Dispose() => _timeout.Dispose();

    private async Task<System.Net.Sockets.NetworkStream> ConnectDataAsync(string address, string token)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(address["unix:".Length..]), _timeout.Token);
        var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
        await WriteFrameAsync(stream, new DataFrame { Token = token });
        return stream;
    }

    private async Task WriteFrameAsync(Stream stream, DataFrame frame)
    {
        var body = frame.ToByteArray();
        await stream.WriteAsync(BitConverter.GetBytes(body.Length), _timeout.Token);
        await stream.WriteAsync(body, _timeout.Token);
    }

    /// <summary>The next frame; null when the worker ended the connection.</summary>
    private async Task<DataFrame?> ReadFrameAsync(Stream stream)
    {
        var header = new byte[4];
        try
        {
            await stream.ReadExactlyAsync(header, _timeout.Token);
        }
        catch (EndOfStreamException)
        {
            return null;
        }

        var body = new byte[BitConverter.ToInt32(header)];
        await stream.ReadExactlyAsync(body, _timeout.Token);
        return DataFrame.Parser.ParseFrom(body);
    }

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
