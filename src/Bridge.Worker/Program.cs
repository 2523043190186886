using System.Runtime.InteropServices;
using Bridge.Worker.Hosting;
using Bridge.Worker.Kernels;
using Bridge.Worker.Python;
using Microsoft.Extensions.Logging;

namespace Bridge.Worker;

/// <summary>
/// Bridge.Worker: one process of a pool, pulling work from the host over one
/// Execution.Work stream (see protos/bridge/v1/execution.proto) and running C# kernels on
/// its own threads. Two ways in:
/// <list type="bullet">
/// <item>a worker for Python work is the client's own interpreter, which loads .NET with
/// hostfxr (bridge_worker.py beside this assembly) and calls <see cref="NativeEntry.Start"/>;</item>
/// <item>a worker with no Python (kernels only) is this executable, <see cref="Main"/>.</item>
/// </list>
/// </summary>
internal static class Program
{
    // 128 + SIGTERM: what the host (and multiprocessing, as -15) expects of a terminated process.
    internal const int ExitTerminated = 143;
    private const int ExitInterrupted = 130;
    internal const int ExitUsage = 2;

    public static async Task<int> Main(string[] args)
    {
        var logger = StderrLogger.Create();
        if (ParseOptions(args, logger) is not { } options)
        {
            return ExitUsage;
        }

        var outbox = new Outbox();
        return await RunAsync(options, python: null, outbox, new OutputForwarder(outbox), logger);
    }

    /// <summary>Parses the command line; null (after printing why) when it is invalid.</summary>
    internal static WorkerOptions? ParseOptions(IReadOnlyList<string> args, ILogger logger)
    {
        try
        {
            return WorkerOptions.Parse(args, Environment.GetEnvironmentVariable);
        }
        catch (WorkerOptionsException exception)
        {
            Log.InvalidCommandLine(logger, exception.Message, WorkerOptions.Usage);
            return null;
        }
    }

    /// <summary>
    /// The worker's whole life: signals, output forwarding, the session. It ends the
    /// process itself (<see cref="ProcessExit.Now"/>), without waiting for a Python task
    /// or a kernel still running after the host vanished.
    /// </summary>
    internal static async Task<int> RunAsync(WorkerOptions options, InterpreterCalls? python, Outbox outbox, OutputForwarder output, ILogger logger)
    {
        // SIGTERM (Process.terminate, pool terminate): exit now, as a stdlib child would die.
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            Log.Terminated(logger);
            ProcessExit.Now(ExitTerminated);
        });
        using var interrupted = new CancellationTokenSource();
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            interrupted.Cancel();
        });

        output.RedirectConsole();
        var kernels = new KernelRunner(new KernelInvoker(new KernelCatalog(CSharpKernelCompiler.WithUserCache())), options.KernelSlots);
        var session = new WorkerSession(options, python, kernels, outbox, output, logger);
        var exitCode = await session.RunAsync(interrupted.Token);
        ProcessExit.Now(interrupted.IsCancellationRequested ? ExitInterrupted : exitCode);
        return exitCode;
    }
}

/// <summary>
/// The functions the client's interpreter calls once it has loaded the .NET runtime
/// (hostfxr's get_function_pointer, from bridge_worker.py over ctypes; each call
/// releases the GIL). <see cref="Start"/> starts the worker and hands back a context; the
/// interpreter's main thread then loops on <see cref="Next"/> and <see cref="Complete"/>
/// (see <see cref="PythonMainThread"/>), and its forwarded output goes to <see cref="Output"/>.
/// </summary>
public static class NativeEntry
{
    /// <summary>
    /// Starts the worker with <paramref name="arguments"/> (the command line as UTF-8,
    /// NUL-separated); 0 and the context in <paramref name="context"/>, or 2 when the
    /// command line is invalid. The worker ends the process itself when its session ends.
    /// </summary>
    [UnmanagedCallersOnly]
    public static unsafe int Start(byte* arguments, int length, nint* context)
    {
        var logger = StderrLogger.Create();
        var args = length == 0 ? [] : System.Text.Encoding.UTF8.GetString(arguments, length).Split('\0');
        if (Program.ParseOptions(args, logger) is not { } options)
        {
            return Program.ExitUsage;
        }

        var mainThread = new PythonMainThread();
        var outbox = new Outbox();
        var output = new OutputForwarder(outbox);
        _ = Task.Run(() => Program.RunAsync(options, new InterpreterCalls(mainThread), outbox, output, logger));
        // Lives as long as the process: the interpreter holds it for every later call.
        *context = GCHandle.ToIntPtr(GCHandle.Alloc(new NativeContext(mainThread, output)));
        return 0;
    }

    /// <summary>Blocks for the main thread's next call: its kind (a <see cref="PythonCall"/>) and payload.</summary>
    [UnmanagedCallersOnly]
    public static unsafe int Next(nint context, byte** data, int* length)
    {
        var kind = Context(context).MainThread.Next(out var payload, out var size);
        *data = payload;
        *length = size;
        return kind;
    }

    /// <summary>The answer to the call <see cref="Next"/> returned: status 0 and the result, or a failure.</summary>
    [UnmanagedCallersOnly]
    public static unsafe void Complete(nint context, int status, byte* data, int length) =>
        Context(context).MainThread.Complete(status, new ReadOnlySpan<byte>(data, length));

    /// <summary>Text the interpreter wrote to stdout (1) or stderr (2), UTF-8: forwarded to the pool's owner.</summary>
    [UnmanagedCallersOnly]
    public static unsafe void Output(nint context, int stream, byte* data, int length) =>
        Context(context).Output.Write(stream, System.Text.Encoding.UTF8.GetString(data, length));

    private static NativeContext Context(nint context) => (NativeContext)GCHandle.FromIntPtr(context).Target!;

    private sealed record NativeContext(PythonMainThread MainThread, OutputForwarder Output);
}

/// <summary>Ends the process at once with an exit code.</summary>
internal static partial class ProcessExit
{
    /// <summary>
    /// _exit(2): no ProcessExit handlers, no Py_Finalize, no wait for the GIL or for
    /// threads. Everything the worker must deliver is flushed before it is called.
    /// </summary>
    public static void Now(int exitCode) => Exit(exitCode);

    [LibraryImport("libc", EntryPoint = "_exit")]
    private static partial void Exit(int status);
}
