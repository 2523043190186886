using System.Runtime.InteropServices;
using Bridge.Worker.Hosting;
using Bridge.Worker.Kernels;
using Bridge.Worker.Python;

namespace Bridge.Worker;

/// <summary>
/// Bridge.Worker: one process of a pool. It embeds the client's CPython (pythonnet) for
/// Python callables and runs C# kernels on its own threads, pulling work from the host
/// over one Execution.Work stream (see protos/bridge/v1/execution.proto).
/// </summary>
internal static class Program
{
    // 128 + SIGTERM: what the host (and multiprocessing, as -15) expects of a terminated process.
    private const int ExitTerminated = 143;
    private const int ExitInterrupted = 130;
    private const int ExitUsage = 2;

    public static async Task<int> Main(string[] args)
    {
        var logger = StderrLogger.Create();
        WorkerOptions options;
        try
        {
            options = WorkerOptions.Parse(args, Environment.GetEnvironmentVariable);
        }
        catch (WorkerOptionsException exception)
        {
            await Console.Error.WriteLineAsync($"Bridge.Worker: {exception.Message}{Environment.NewLine}{WorkerOptions.Usage}");
            return ExitUsage;
        }

        // Python first: its ~150 ms start overlaps the connection and the wait for work.
        var python = options.HasPython
            ? new EmbeddedPython(PythonThread.Start(options.PythonLibrary!, options.PythonExecutable!, logger))
            : null;

        // SIGTERM (Process.terminate, pool terminate): exit now, as a stdlib child would die.
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            Log.Terminated(logger);
            Environment.Exit(ExitTerminated);
        });
        using var interrupted = new CancellationTokenSource();
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            interrupted.Cancel();
        });

        var outbox = new Outbox();
        var output = new OutputForwarder(outbox);
        output.RedirectConsole();
        var kernels = new KernelRunner(new KernelInvoker(new KernelCatalog()), options.KernelSlots);
        var session = new WorkerSession(options, python, kernels, outbox, output, logger);
        var exitCode = await session.RunAsync(interrupted.Token);

        // Not a return: Environment.Exit does not wait for the Python thread or a kernel
        // still running after the host vanished, and pythonnet's Shutdown is detached.
        Environment.Exit(interrupted.IsCancellationRequested ? ExitInterrupted : exitCode);
        return exitCode;
    }
}
