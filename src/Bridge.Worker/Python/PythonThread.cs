using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using Bridge.Worker.Hosting;
using Microsoft.Extensions.Logging;
using Python.Runtime;

namespace Bridge.Worker.Python;

/// <summary>
/// The one thread that runs Python in this process. It initializes the interpreter (so it
/// is the interpreter's main thread: signal.signal and threading.main_thread() behave as in
/// a spawned child), then runs queued work items one at a time, each holding the GIL only
/// while it runs. The GIL would serialize Python callables anyway; one thread keeps their
/// order and never blocks a thread-pool thread on the GIL.
/// </summary>
internal sealed class PythonThread
{
    private readonly BlockingCollection<Action> _work = [];
    private readonly TaskCompletionSource<TimeSpan> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _library;
    private readonly string _executable;
    private readonly ILogger _logger;

    private PythonThread(string library, string executable, ILogger logger)
    {
        _library = library;
        _executable = executable;
        _logger = logger;
    }

    /// <summary>Completes with the initialization time once the interpreter is up (faults if it cannot start).</summary>
    public Task<TimeSpan> Ready => _ready.Task;

    public string Library => _library;

    /// <summary>
    /// Starts the thread and initializes Python at once, in parallel with the gRPC
    /// connection: a warm worker hides this cost (~110–170 ms) before its first task.
    /// </summary>
    public static PythonThread Start(string library, string executable, ILogger logger)
    {
        var python = new PythonThread(library, executable, logger);
        var thread = new Thread(python.Run)
        {
            IsBackground = true,
            Name = "python",
        };
        thread.Start();
        return python;
    }

    /// <summary>Runs <paramref name="work"/> on the Python thread with the GIL held.</summary>
    public Task<T> InvokeAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (cancellationToken.IsCancellationRequested)
        {
            completion.SetCanceled(cancellationToken);
            return completion.Task;
        }

        void Execute()
        {
            try
            {
                using (Py.GIL())
                {
                    completion.TrySetResult(work());
                }
            }
            catch (Exception exception)
            {
                completion.TrySetException(exception);
            }
        }

        try
        {
            _work.Add(Execute, cancellationToken);
        }
        catch (InvalidOperationException exception)
        {
            completion.TrySetException(exception);
        }

        return completion.Task;
    }

    private void Run()
    {
        var clock = Stopwatch.StartNew();
        try
        {
            // The order matters: the DLL before any other pythonnet call, the program name
            // before Initialize (or sys.executable and the venv's prefix are wrong).
            Runtime.PythonDLL = _library;
            PythonEngine.ProgramName = _executable;
            PythonEngine.Initialize();
            // Without this the interpreter keeps the GIL on this thread and the first
            // Py.GIL() elsewhere hangs; work items take it back one at a time.
            PythonEngine.BeginAllowThreads();
            DetachShutdownOnExit();
            PreImportStandardLibrary();
            clock.Stop();
            Log.PythonInitialized(_logger, PythonEngine.Version.Split(' ')[0], clock.Elapsed.TotalMilliseconds);
            _ready.TrySetResult(clock.Elapsed);
        }
        catch (Exception exception)
        {
            Log.PythonInitializationFailed(_logger, _library, exception);
            _ready.TrySetException(exception);
            return;
        }

        foreach (var work in _work.GetConsumingEnumerable())
        {
            work();
        }
    }

    /// <summary>
    /// Imports the standard-library modules every assignment needs while the worker is
    /// still warm and idle, so the assignment (the part a Pool waits for) is shorter.
    /// Only the stdlib: it is the interpreter's own, whereas third-party modules and
    /// gilbridge must come from the client's sys.path, which arrives with the assignment.
    /// </summary>
    private static void PreImportStandardLibrary()
    {
        using (Py.GIL())
        {
            foreach (var name in (string[])["typing", "pickle", "traceback", "codecs", "runpy", "multiprocessing", "multiprocessing.spawn"])
            {
                using var module = Py.Import(name);
            }
        }
    }

    /// <summary>
    /// pythonnet runs PythonEngine.Shutdown from AppDomain.ProcessExit. A worker never
    /// needs it: it exits the process right after, Py_Finalize costs 100–200 ms, and it
    /// waits for the GIL, so exiting while a task holds the GIL would hang. There is no
    /// public switch; the handler is a private static method of the pinned version (3.2.1).
    /// </summary>
    private void DetachShutdownOnExit()
    {
        var handler = typeof(PythonEngine).GetMethod("OnProcessExit", BindingFlags.NonPublic | BindingFlags.Static, [typeof(object), typeof(EventArgs)]);
        if (handler is null)
        {
            Log.ExitHandlerNotFound(_logger);
            return;
        }

        AppDomain.CurrentDomain.ProcessExit -= handler.CreateDelegate<EventHandler>();
    }
}
