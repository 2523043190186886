using Bridge.Contracts.V1;

namespace Bridge.Worker.Tests;

/// <summary>Process mode: one worker runs one pickled multiprocessing.Process and exits with its code.</summary>
public sealed class ProcessModeTests(PythonPayloads python) : IClassFixture<PythonPayloads>
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Fact(Timeout = 60_000)]
    public async Task A_Process_runs_as_its_own_current_process_and_its_exit_code_is_the_workers()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, ready) = await WorkerHarness.StartAssignedAsync(python, timeout.Token, assignment =>
        {
            assignment.ProcessMode = true;
            assignment.Name = "exiter-7";
        });
        await using var _ = harness;
        Assert.Equal(1, ready.Slots);

        var chunk = new TaskChunk { TaskId = 1, Style = CallStyle.RunProcess, Function = new Callable { Python = Google.Protobuf.ByteString.Empty } };
        chunk.Items.Add(Google.Protobuf.ByteString.CopyFrom(python.Bytes("process")));
        await harness.Connection.SendAsync(new WorkerCommand { Task = chunk }, timeout.Token);

        var result = await harness.Connection.NextAsync(WorkerMessage.MessageOneofCase.Result, timeout.Token);
        Assert.Equal("3", WorkerHarness.Repr(result.Result.Values[0]));
        var exit = await harness.Connection.NextAsync(WorkerMessage.MessageOneofCase.ProcessExit, timeout.Token);
        Assert.Equal(3, exit.ProcessExit.ExitCode);
        Assert.Equal(harness.Worker.Pid, exit.ProcessExit.Pid);
        // run() printed current_process().name and os.getpid(): the Process's name, the worker's pid.
        Assert.Contains($"process exiter-7 pid {harness.Worker.Pid}\n", harness.Connection.Output(1), StringComparison.Ordinal);

        Assert.Null(await harness.Connection.NextAsync(timeout.Token));
        Assert.Equal(3, await harness.Worker.WaitForExitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact(Timeout = 60_000)]
    public async Task Sigterm_ends_the_worker_at_once_even_while_Python_holds_the_GIL()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var __ = harness;
        await harness.Connection.SendAsync(new WorkerCommand { Task = WorkerHarness.PythonChunk(1, python.Bytes("spin"), CallStyle.Map, python.Items("items_spin_long")) }, timeout.Token);
        await Task.Delay(500, timeout.Token);
        Assert.False(harness.Worker.HasExited);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        harness.Worker.Signal(15);
        Assert.Equal(143, await harness.Worker.WaitForExitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"SIGTERM took {clock.Elapsed.TotalMilliseconds:F0} ms");
    }
}
