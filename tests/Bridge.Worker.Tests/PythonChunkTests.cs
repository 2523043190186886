using System.Diagnostics;
using Bridge.Contracts.V1;
using Xunit.Abstractions;

namespace Bridge.Worker.Tests;

/// <summary>
/// The Python chunk runner in a real worker process (the venv's interpreter with .NET
/// loaded into it by bridge_worker.py), fed by a fake host over a real gRPC stream.
/// </summary>
public sealed class PythonChunkTests(PythonPayloads python, ITestOutputHelper output) : IClassFixture<PythonPayloads>
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Fact(Timeout = 60_000)]
    public async Task Map_runs_a_cloudpickled_lambda_and_a_closure()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, ready) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var _ = harness;
        Assert.Equal(harness.Worker.Pid, harness.Hello.Pid);
        Assert.Equal(WorkerHarness.Token, harness.Hello.WorkerToken);
        Assert.Equal(2, harness.Hello.KernelSlots);
        // One Python chunk at a time until the worker knows chunks are short.
        Assert.Equal(1, ready.Slots);

        var squares = await harness.RunAsync(WorkerHarness.PythonChunk(1, python.Bytes("square"), CallStyle.Map, python.Items("items_0_5")), timeout.Token);
        Assert.Null(squares.Error);
        Assert.Equal(["0", "1", "4", "9", "16"], squares.Values.Select(WorkerHarness.Repr));
        Assert.Equal(harness.Worker.Pid, squares.WorkerPid);

        var added = await harness.RunAsync(WorkerHarness.PythonChunk(2, python.Bytes("adder"), CallStyle.Map, python.Items("items_0_5")), timeout.Token);
        Assert.Equal(["10", "11", "12", "13", "14"], added.Values.Select(WorkerHarness.Repr));
        await harness.ShutdownAsync(timeout.Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Starmap_and_call_with_keywords()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var __ = harness;

        var powers = await harness.RunAsync(WorkerHarness.PythonChunk(1, python.Bytes("power"), CallStyle.Starmap, python.Items("items_pairs")), timeout.Token);
        Assert.Null(powers.Error);
        Assert.Equal(["8", "9", "1"], powers.Values.Select(WorkerHarness.Repr));

        // combine(a, b=0, *, scale=1) -> ((a + b) * scale, "a+b"): a tuple comes back as ext 2.
        var combined = await harness.RunAsync(WorkerHarness.PythonChunk(2, python.Bytes("combine"), CallStyle.Call, python.Items("items_call")), timeout.Token);
        Assert.Null(combined.Error);
        Assert.Equal(["(9, '1+2')", "(5, '5+0')"], combined.Values.Select(WorkerHarness.Repr));
        await harness.ShutdownAsync(timeout.Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_exception_ends_the_chunk_as_a_TaskError_and_the_worker_goes_on()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var __ = harness;

        // 10 // x over [5, 2, 0, 1]: the third call fails, the fourth never runs.
        var divided = await harness.RunAsync(WorkerHarness.PythonChunk(1, python.Bytes("divide"), CallStyle.Map, python.Items("items_divide")), timeout.Token);
        Assert.Empty(divided.Values);
        Assert.Equal("ZeroDivisionError", divided.Error.Type);
        Assert.Equal("integer division or modulo by zero", divided.Error.Message);
        Assert.Contains("Traceback (most recent call last)", divided.Error.Traceback, StringComparison.Ordinal);
        Assert.Contains("ZeroDivisionError: integer division or modulo by zero", divided.Error.Traceback, StringComparison.Ordinal);
        Assert.DoesNotContain("_worker.py", divided.Error.Traceback, StringComparison.Ordinal);
        Assert.NotEmpty(divided.Error.Pickled);
        Assert.False(divided.Error.WorkerDied);

        var custom = await harness.RunAsync(WorkerHarness.PythonChunk(2, python.Bytes("fail_custom"), CallStyle.Map, python.Items("items_0_5")), timeout.Token);
        Assert.Equal("__main__.MyError", custom.Error.Type);
        Assert.Equal("custom failure at 2", custom.Error.Message);
        Assert.Contains("in fail_custom", custom.Error.Traceback, StringComparison.Ordinal);

        var after = await harness.RunAsync(WorkerHarness.PythonChunk(3, python.Bytes("square"), CallStyle.Map, python.Items("items_pairs")), timeout.Token);
        Assert.Equal("TypeError", after.Error.Type);

        var fine = await harness.RunAsync(WorkerHarness.PythonChunk(4, python.Bytes("square"), CallStyle.Map, python.Items("items_0_5")), timeout.Token);
        Assert.Null(fine.Error);
        await harness.ShutdownAsync(timeout.Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Print_in_a_task_is_forwarded_as_output_before_the_result()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var __ = harness;

        var printed = await harness.RunAsync(WorkerHarness.PythonChunk(1, python.Bytes("printer"), CallStyle.Map, python.Items("items_0_5").Take(2)), timeout.Token);
        Assert.Null(printed.Error);
        var stdout = harness.Connection.Output(1);
        Assert.Contains("hello from task 0\n", stdout, StringComparison.Ordinal);
        Assert.Contains("hello from task 1\n", stdout, StringComparison.Ordinal);
        // Text without a newline is flushed when the chunk ends, still before its result.
        Assert.EndsWith("no newline", stdout, StringComparison.Ordinal);
        Assert.Contains("warning 1\n", harness.Connection.Output(2), StringComparison.Ordinal);
        Assert.All(harness.Connection.OutputMessages, o => Assert.Equal(harness.Worker.Pid, o.WorkerPid));

        // A clean Shutdown runs Python's atexit handlers (gilbridge flushes its queues there).
        await harness.RunAsync(WorkerHarness.PythonChunk(2, python.Bytes("register_goodbye"), CallStyle.Map, python.Items("items_0_5").Take(1)), timeout.Token);
        await harness.ShutdownAsync(timeout.Token);
        Assert.EndsWith("atexit ran at shutdown\n", harness.Connection.Output(1), StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_assignment_sets_directory_environment_main_module_and_initializer()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var directory = Directory.CreateTempSubdirectory("bridge-worker-main-").FullName;
        try
        {
            var main = Path.Combine(directory, "script.py");
            await File.WriteAllTextAsync(main, "def triple(x):\n    return 3 * x\n\nif __name__ == '__main__':\n    raise SystemExit('the worker must not run the main block')\n", timeout.Token);
            var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token, assignment =>
            {
                assignment.Python.WorkingDirectory = directory;
                assignment.Python.Environment["GB_TEST_VAR"] = "from the client";
                assignment.Python.MainPath = main;
                assignment.Initializer = Google.Protobuf.ByteString.CopyFrom(python.Bytes("initializer"));
                assignment.Name = "SpawnPoolWorker-3";
            });
            await using var __ = harness;
            Assert.Contains("initializer ran with yes\n", harness.Connection.Output(1), StringComparison.Ordinal);

            var context = await harness.RunAsync(WorkerHarness.PythonChunk(1, python.Bytes("context"), CallStyle.Map, python.Items("items_0_5").Take(1)), timeout.Token);
            Assert.Null(context.Error);
            Assert.Equal(
                $"['{directory}', 'from the client', 'yes', 'SpawnPoolWorker-3', 'spawn', '{python.Executable}', {harness.Worker.Pid}, True]",
                WorkerHarness.Repr(context.Values[0]));

            // Pickled by reference to __main__.triple: resolves through the main file run as __mp_main__.
            var tripled = await harness.RunAsync(WorkerHarness.PythonChunk(2, python.Bytes("triple_by_reference"), CallStyle.Map, python.Items("items_0_5")), timeout.Token);
            Assert.Null(tripled.Error);
            Assert.Equal(["0", "3", "6", "9", "12"], tripled.Values.Select(WorkerHarness.Repr));
            await harness.ShutdownAsync(timeout.Token);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_failing_initializer_prints_its_traceback_and_exits_1()
    {
        using var timeout = new CancellationTokenSource(Limit);
        await using var harness = await WorkerHarness.StartAsync(python, timeout.Token);
        var assignment = WorkerHarness.Assignment(python);
        assignment.Initializer = Google.Protobuf.ByteString.CopyFrom(python.Bytes("failing_initializer"));
        await harness.Connection.SendAsync(new WorkerCommand { Assign = assignment }, timeout.Token);

        Assert.Null(await harness.Connection.NextAsync(timeout.Token));
        Assert.Equal(1, await harness.Worker.WaitForExitAsync(TimeSpan.FromSeconds(10)));
        var stderr = harness.Connection.Output(2);
        Assert.Contains("RuntimeError: initializer exploded", stderr, StringComparison.Ordinal);
        Assert.Contains("in failing_initializer", stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Overhead_of_a_map_of_abs_over_100k_items()
    {
        using var timeout = new CancellationTokenSource(Limit);
        var (harness, _) = await WorkerHarness.StartAssignedAsync(python, timeout.Token);
        await using var __ = harness;
        var function = python.Bytes("abs");
        var chunks = Enumerable.Range(0, 100)
            .Select(c => WorkerHarness.PythonChunk(c, function, CallStyle.Map, Enumerable.Range(c * 1000, 1000).Select(i => MessagePack.MessagePackSerializer.Serialize(-i))))
            .ToList();

        // Pipelined as a host would with enough credits: the stream carries all chunks at once.
        var clock = Stopwatch.StartNew();
        foreach (var chunk in chunks)
        {
            await harness.Connection.SendAsync(new WorkerCommand { Task = chunk }, timeout.Token);
        }

        long checksum = 0;
        for (var c = 0; c < chunks.Count; c++)
        {
            var result = (await harness.Connection.NextAsync(WorkerMessage.MessageOneofCase.Result, timeout.Token)).Result;
            Assert.Null(result.Error);
            Assert.Equal(1000, result.Values.Count);
            checksum += result.Values.Sum(v => MessagePack.MessagePackSerializer.Deserialize<long>(v.Memory));
        }

        clock.Stop();
        Assert.Equal(99_999L * 100_000 / 2, checksum);
        output.WriteLine($"map(abs) over 100,000 items in 100 chunks through the worker: {clock.Elapsed.TotalMilliseconds:F0} ms, {clock.Elapsed.TotalMicroseconds / 100_000:F2} µs per item");
        await harness.ShutdownAsync(timeout.Token);
        output.WriteLine("worker log:\n" + harness.Worker.Log);
    }
}
