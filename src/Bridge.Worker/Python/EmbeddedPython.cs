using System.Diagnostics;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Python.Runtime;

namespace Bridge.Worker.Python;

/// <summary>
/// The worker's calls into gilbridge._worker, made on the <see cref="PythonThread"/>.
/// Interop stays minimal: a chunk crosses as its protobuf bytes (into a bytearray
/// through the buffer protocol, ~2–3 µs) and its result comes back the same way, so
/// pythonnet never converts items, functions or exceptions one by one.
/// </summary>
internal sealed class EmbeddedPython(PythonThread thread)
{
    // Python objects touched only on the Python thread, with the GIL held.
    private PyObject? _runChunk;
    private PyObject? _runProcess;
    private PyObject? _flushOutput;
    private PyObject? _atExit;
    private PyObject? _bytearray;
    private PyObject? _module;

    // The environment Prepare applied; touched only on the Python thread.
    private PythonEnvironment? _preparedFor;

    public PythonThread Thread { get; } = thread;

    public bool IsAssigned => Volatile.Read(ref _runChunk) is not null;

    /// <summary>
    /// Applies a client's environment ahead of (or as part of) an assignment: the
    /// client's sys.path first (gilbridge itself comes from the client's environment),
    /// then gilbridge._worker.prepare (cwd, environment, output, __mp_main__).
    /// A Python exception surfaces as <see cref="PythonFailure"/> with its traceback.
    /// </summary>
    public Task PrepareAsync(PythonEnvironment environment, Action<int, string> output, CancellationToken cancellationToken) =>
        Thread.InvokeAsync(() =>
        {
            try
            {
                Prepare(environment, output);
                return true;
            }
            catch (PythonException exception)
            {
                throw PythonFailure.From(exception);
            }
        }, cancellationToken);

    /// <summary>
    /// Applies the pool's assignment: the environment unless <see cref="PrepareAsync"/>
    /// already applied this same one, then gilbridge._worker.assign (the process name
    /// and the pool initializer).
    /// </summary>
    public Task AssignAsync(Assignment assignment, Action<int, string> output, CancellationToken cancellationToken)
    {
        var environment = assignment.Python ?? new PythonEnvironment();
        return Thread.InvokeAsync(() =>
        {
            try
            {
                if (_module is null || !environment.Equals(_preparedFor))
                {
                    Prepare(environment, output);
                }

                using var initializer = ToBytearray(_bytearray!, assignment.Initializer.ToByteArray());
                using var name = new PyString(assignment.Name);
                using var assign = _module!.GetAttr("assign");
                using var _ = assign.Invoke(initializer, name);

                _flushOutput = _module.GetAttr("flush_output");
                _atExit = _module.GetAttr("at_exit");
                _runProcess = _module.GetAttr("run_process");
                Volatile.Write(ref _runChunk, _module.GetAttr("run_chunk"));
                return true;
            }
            catch (PythonException exception)
            {
                throw PythonFailure.From(exception);
            }
        }, cancellationToken);
    }

    /// <summary>Runs on the Python thread with the GIL held.</summary>
    private void Prepare(PythonEnvironment environment, Action<int, string> output)
    {
        using var sys = Py.Import("sys");
        using var path = new PyList();
        foreach (var entry in environment.SysPath)
        {
            using var item = new PyString(entry);
            path.Append(item);
        }

        sys.SetAttr("path", path);
        var module = Py.Import("gilbridge._worker");
        using var variables = new PyDict();
        foreach (var (key, value) in environment.Environment)
        {
            using var pyKey = new PyString(key);
            using var pyValue = new PyString(value);
            variables.SetItem(pyKey, pyValue);
        }

        using var argv = new PyList();
        foreach (var entry in environment.Argv)
        {
            using var item = new PyString(entry);
            argv.Append(item);
        }

        using var builtins = Py.Import("builtins");
        using var workingDirectory = new PyString(environment.WorkingDirectory);
        using var mainPath = new PyString(environment.MainPath);
        using var sink = output.ToPython();
        using var prepare = module.GetAttr("prepare");
        using var _ = prepare.Invoke(path, workingDirectory, variables, mainPath, argv, sink);
        _bytearray ??= builtins.GetAttr("bytearray");
        _module = module;
        _preparedFor = environment;
    }

    /// <summary>
    /// Runs a CALL/MAP/STARMAP chunk; user exceptions are inside the result's error.
    /// Elapsed is the time on the Python thread (not the wait behind earlier chunks).
    /// </summary>
    public Task<(TaskResult Result, TimeSpan Elapsed)> RunChunkAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        var input = chunk.ToByteArray();
        return Thread.InvokeAsync(() =>
        {
            var runChunk = _runChunk ?? throw new InvalidOperationException("the worker has no Python assignment");
            var started = Stopwatch.GetTimestamp();
            try
            {
                using var data = ToBytearray(_bytearray!, input);
                using var result = runChunk.Invoke(data);
                return (TaskResult.Parser.ParseFrom(ReadBytes(result)), Stopwatch.GetElapsedTime(started));
            }
            catch (PythonException exception)
            {
                throw PythonFailure.From(exception);
            }
        }, cancellationToken);
    }

    /// <summary>Runs a RUN_PROCESS chunk's Process object; returns its exit code.</summary>
    public Task<int> RunProcessAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        var input = chunk.ToByteArray();
        return Thread.InvokeAsync(() =>
        {
            var runProcess = _runProcess ?? throw new InvalidOperationException("the worker has no Python assignment");
            try
            {
                using var data = ToBytearray(_bytearray!, input);
                using var exitCode = runProcess.Invoke(data);
                return exitCode.As<int>();
            }
            catch (PythonException exception)
            {
                throw PythonFailure.From(exception);
            }
        }, cancellationToken);
    }

    /// <summary>Runs the atexit handlers, as a spawned child's clean exit does (no-op before the assignment).</summary>
    public Task RunExitHandlersAsync(CancellationToken cancellationToken) => Thread.InvokeAsync(() =>
    {
        try
        {
            using var _ = _atExit?.Invoke();
            return true;
        }
        catch (PythonException exception)
        {
            throw PythonFailure.From(exception);
        }
    }, cancellationToken);

    /// <summary>Flushes Python's forwarded stdout/stderr (text printed without a newline).</summary>
    public Task FlushOutputAsync(CancellationToken cancellationToken) => Thread.InvokeAsync(() =>
    {
        using var _ = _flushOutput?.Invoke();
        return true;
    }, cancellationToken);

    /// <summary>A Python bytearray holding <paramref name="data"/>: one copy through the buffer protocol.</summary>
    private static PyObject ToBytearray(PyObject bytearrayType, byte[] data)
    {
        using var length = new PyInt(data.Length);
        var array = bytearrayType.Invoke(length);
        if (data.Length > 0)
        {
            using var buffer = array.GetBuffer(PyBUF.WRITABLE);
            buffer.Write(data, 0, data.Length, 0);
        }

        return array;
    }

    private static byte[] ReadBytes(PyObject bytesLike)
    {
        using var buffer = bytesLike.GetBuffer(PyBUF.SIMPLE);
        var bytes = new byte[buffer.Length];
        buffer.Read(bytes, 0, bytes.Length, 0);
        return bytes;
    }
}

/// <summary>A Python exception raised outside user calls, with its formatted traceback.</summary>
internal sealed class PythonFailure(string type, string message, string traceback) : Exception(message)
{
    public string PythonType { get; } = type;

    public string PythonTraceback { get; } = traceback;

    /// <summary>Formats the exception; call with the GIL held.</summary>
    public static PythonFailure From(PythonException exception)
    {
        string type;
        try
        {
            using var name = exception.Type.GetAttr("__qualname__");
            using var module = exception.Type.GetAttr("__module__");
            var moduleName = module.ToString();
            type = moduleName is null or "builtins" ? name.ToString() ?? "Exception" : $"{moduleName}.{name}";
        }
        catch (PythonException)
        {
            type = "Exception";
        }

        return new PythonFailure(type, exception.Message, exception.Format());
    }
}
