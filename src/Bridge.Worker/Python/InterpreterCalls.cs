using System.Globalization;
using System.Text;
using System.Text.Json;
using Bridge.Contracts.V1;
using Google.Protobuf;

namespace Bridge.Worker.Python;

/// <summary>
/// The worker's calls into gilbridge._worker, served by the interpreter's main thread
/// (<see cref="PythonMainThread"/>). Interop stays minimal: a chunk crosses as its
/// protobuf bytes and its result comes back the same way; unpickling, decoding, calling
/// and encoding all happen in Python.
/// </summary>
internal sealed class InterpreterCalls(PythonMainThread thread)
{
    // The environment last applied; touched only by the session's serial steps.
    private PythonEnvironment? _prepared;
    private volatile bool _assigned;

    public PythonMainThread Thread { get; } = thread;

    public bool IsAssigned => _assigned;

    /// <summary>
    /// Applies a client's environment ahead of (or as part of) an assignment: sys.path,
    /// working directory, variables, argv, output forwarding and the parent's __main__
    /// (gilbridge._worker.prepare). A Python exception surfaces as <see cref="PythonFailure"/>.
    /// </summary>
    public async Task PrepareAsync(PythonEnvironment environment, CancellationToken cancellationToken)
    {
        await Thread.CallAsync(PythonCall.Prepare, EnvironmentJson(environment), cancellationToken);
        _prepared = environment;
    }

    /// <summary>
    /// Applies the pool's assignment: the environment unless it is already applied, then
    /// gilbridge._worker.assign (the process name and the pool initializer).
    /// </summary>
    public async Task AssignAsync(Assignment assignment, CancellationToken cancellationToken)
    {
        var environment = assignment.Python ?? new PythonEnvironment();
        if (!environment.Equals(_prepared))
        {
            await PrepareAsync(environment, cancellationToken);
        }

        await Thread.CallAsync(PythonCall.Assign, assignment.ToByteArray(), cancellationToken);
        _assigned = true;
    }

    /// <summary>
    /// Runs a CALL/MAP/STARMAP chunk; user exceptions are inside the result's error.
    /// Elapsed is the time on the main thread (not the wait behind earlier chunks).
    /// </summary>
    public async Task<(TaskResult Result, TimeSpan Elapsed)> RunChunkAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        var answer = await Thread.CallAsync(PythonCall.RunChunk, chunk.ToByteArray(), cancellationToken);
        return (TaskResult.Parser.ParseFrom(answer.Bytes), answer.Elapsed);
    }

    /// <summary>Runs a RUN_PROCESS chunk's Process object; returns its exit code.</summary>
    public async Task<int> RunProcessAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        var answer = await Thread.CallAsync(PythonCall.RunProcess, chunk.ToByteArray(), cancellationToken);
        return int.Parse(Encoding.ASCII.GetString(answer.Bytes), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Leaves the pool: gilbridge._worker.release flushes what the pool's tasks left
    /// buffered (output, queue puts) so that it is delivered now, as a stdlib worker's
    /// exit would deliver it.
    /// </summary>
    public Task ReleaseAsync(CancellationToken cancellationToken) => Thread.CallAsync(PythonCall.Release, [], cancellationToken);

    /// <summary>Runs the atexit handlers, as a spawned child's clean exit does.</summary>
    public Task RunExitHandlersAsync(CancellationToken cancellationToken) => Thread.CallAsync(PythonCall.AtExit, [], cancellationToken);

    /// <summary>Flushes Python's forwarded stdout/stderr (text printed without a newline).</summary>
    public Task FlushOutputAsync(CancellationToken cancellationToken) => Thread.CallAsync(PythonCall.FlushOutput, [], cancellationToken);

    /// <summary>
    /// Runs, once, the serialization an assignment and a chunk need (protobuf's string
    /// and map codecs, the JSON writer's encoder), so that their one-time costs are paid
    /// while the worker is idle. Touches no Python.
    /// </summary>
    public void WarmUp()
    {
        var environment = new PythonEnvironment { SysPath = { "/" }, WorkingDirectory = "/", MainPath = "/m.py", Argv = { "m.py" } };
        environment.Environment["A"] = "é";
        var assignment = Assignment.Parser.ParseFrom(new Assignment { Python = environment, Name = "warm-up" }.ToByteArray());
        _ = EnvironmentJson(assignment.Python);
        _ = TaskChunk.Parser.ParseFrom(new TaskChunk { TaskId = 1, Items = { ByteString.CopyFromUtf8("x") } }.ToByteArray());
        _ = TaskResult.Parser.ParseFrom(new TaskResult { TaskId = 1, Values = { ByteString.CopyFromUtf8("x") } }.ToByteArray());
    }

    /// <summary>
    /// The environment as JSON: the first call reaches the interpreter before it can
    /// import anything but the standard library (gilbridge comes from this sys.path).
    /// </summary>
    private static byte[] EnvironmentJson(PythonEnvironment environment)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("sys_path");
            foreach (var entry in environment.SysPath)
            {
                json.WriteStringValue(entry);
            }

            json.WriteEndArray();
            json.WriteString("working_directory", environment.WorkingDirectory);
            json.WriteStartObject("environment");
            foreach (var (key, value) in environment.Environment)
            {
                json.WriteString(key, value);
            }

            json.WriteEndObject();
            json.WriteString("main_path", environment.MainPath);
            json.WriteStartArray("argv");
            foreach (var entry in environment.Argv)
            {
                json.WriteStringValue(entry);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
