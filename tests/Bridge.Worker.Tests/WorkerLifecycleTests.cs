using System.Diagnostics;
using Bridge.Contracts.V1;

namespace Bridge.Worker.Tests;

/// <summary>The worker without Python work: arguments, kernels, shutdown and losing the host.</summary>
public sealed class WorkerLifecycleTests(PythonPayloads python) : IClassFixture<PythonPayloads>
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Theory(Timeout = 30_000)]
    [InlineData(new string[0], "--host is required")]
    [InlineData(new[] { "--host", "unix:/tmp/x.sock" }, "--worker-token is required")]
    [InlineData(new[] { "--host", "nohost", "--worker-token", "t" }, "neither unix:/path nor host:port")]
    [InlineData(new[] { "--host", "unix:/tmp/x.sock", "--worker-token", "t", "--kernel-slots", "0" }, "--kernel-slots must be")]
    [InlineData(new[] { "--host", "unix:/tmp/x.sock", "--worker-token", "t", "--python-library", "/usr/lib/x86_64-linux-gnu/libc.so.6" }, "unknown option --python-library")]
    [InlineData(new[] { "--host", "unix:/tmp/x.sock", "--worker-token", "t", "--bogus", "1" }, "unknown option --bogus")]
    public async Task Bad_arguments_exit_2_with_a_message(string[] arguments, string message)
    {
        await using var worker = WorkerProcess.Start(arguments);
        Assert.Equal(2, await worker.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains(message, worker.Log, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Kernel_chunks_run_without_Python_and_credits_follow_kernel_slots()
    {
        using var timeout = new CancellationTokenSource(Limit);
        await using var harness = await WorkerHarness.StartAsync(python: null, timeout.Token, kernelSlots: 3);
        Assert.Equal(3, harness.Hello.KernelSlots);
        await harness.Connection.SendAsync(new WorkerCommand { Assign = new Assignment { PoolId = "kernels" } }, timeout.Token);
        Assert.Equal(1, (await harness.Connection.NextAsync(timeout.Token))!.Ready.Slots);

        var primes = await harness.RunAsync(WorkerHarness.KernelChunk(1, "Bridge.Kernels.Primes.Count", CallStyle.Starmap, python.Items("items_prime_ranges")), timeout.Token);
        Assert.Null(primes.Error);
        Assert.Equal(["25", "168"], primes.Values.Select(WorkerHarness.Repr));

        // A user assembly by path; its Console output reaches the host as OutputText.
        var shout = $"{typeof(TestKernels).Assembly.Location}:Bridge.Worker.Tests.TestKernels.Shout";
        var shouted = await harness.RunAsync(WorkerHarness.KernelChunk(3, shout, CallStyle.Map, [MessagePack.MessagePackSerializer.Serialize("hi there")]), timeout.Token);
        Assert.Null(shouted.Error);
        Assert.Equal("8", WorkerHarness.Repr(shouted.Values[0]));
        Assert.Equal("hi there\n", harness.Connection.Output(1));
        Assert.Equal("partial", harness.Connection.Output(2));

        // A Python chunk on a worker without Python fails cleanly instead of hanging.
        var noPython = await harness.RunAsync(WorkerHarness.PythonChunk(2, python.Bytes("square"), CallStyle.Map, python.Items("items_0_5")), timeout.Token);
        Assert.Equal("RuntimeError", noPython.Error.Type);

        // Kernels run concurrently: three 0.5 s sleeps on three slots take ~0.5 s, not 1.5 s.
        var sleep = MessagePack.MessagePackSerializer.Serialize(0.5);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 3; i++)
        {
            await harness.Connection.SendAsync(new WorkerCommand { Task = WorkerHarness.KernelChunk(10 + i, "Bridge.Kernels.Timing.Sleep", CallStyle.Map, [sleep]) }, timeout.Token);
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.Null((await harness.Connection.NextAsync(WorkerMessage.MessageOneofCase.Result, timeout.Token)).Result.Error);
        }

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.2), $"three sleeps took {clock.Elapsed.TotalMilliseconds:F0} ms");
        await harness.ShutdownAsync(timeout.Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Shutdown_lets_the_running_chunk_finish_then_exits_0()
    {
        using var timeout = new CancellationTokenSource(Limit);
        await using var harness = await WorkerHarness.StartAsync(python: null, timeout.Token);
        await harness.Connection.SendAsync(new WorkerCommand { Assign = new Assignment { PoolId = "kernels" } }, timeout.Token);
        var chunk = WorkerHarness.KernelChunk(1, "Bridge.Kernels.Timing.Sleep", CallStyle.Map, [MessagePack.MessagePackSerializer.Serialize(0.5)]);
        await harness.Connection.SendAsync(new WorkerCommand { Task = chunk }, timeout.Token);
        await harness.Connection.SendAsync(new WorkerCommand { Shutdown = true }, timeout.Token);

        var result = await harness.Connection.NextAsync(WorkerMessage.MessageOneofCase.Result, timeout.Token);
        Assert.Equal("0.5", WorkerHarness.Repr(result.Result.Values[0]));
        Assert.Null(await harness.Connection.NextAsync(timeout.Token));
        Assert.Equal(0, await harness.Worker.WaitForExitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(harness.Connection.RequestEnded);
    }

    [Fact(Timeout = 60_000)]
    public async Task Losing_the_stream_makes_the_worker_exit_even_mid_task()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var __ = harness;
        await harness.Connection.SendAsync(new WorkerCommand { Task = WorkerHarness.PythonChunk(1, python.Bytes("spin"), CallStyle.Map, python.Items("items_spin_long")) }, timeout.Token);
        await Task.Delay(300, timeout.Token);

        var clock = Stopwatch.StartNew();
        harness.Connection.Close();
        Assert.Equal(1, await harness.Worker.WaitForExitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"exit took {clock.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Contains("Lost the host", harness.Worker.Log, StringComparison.Ordinal);
    }
}
