using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Bridge.Worker.Tests;

/// <summary>
/// A real Bridge.Worker process (the built executable), stopped by its pid when disposed:
/// SIGKILL if it is still running. Its own stdout/stderr (the worker's log) are kept for
/// failure messages.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private WorkerProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Completes when the process exits.</summary>
    public Task Exited => _process.WaitForExitAsync();

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static string Executable()
    {
        var path = Environment.GetEnvironmentVariable("GILBRIDGE_WORKER_PATH");
        if (string.IsNullOrEmpty(path))
        {
            // The worker project's own build output of the same configuration (the copy the
            // project reference leaves beside the tests lacks the worker's runtime config).
            var tfm = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory));
            var configuration = tfm.Parent!.Name;
            path = Path.Combine(PythonPayloads.RepositoryRoot(), "src", "Bridge.Worker", "bin", configuration, tfm.Name, "Bridge.Worker");
        }

        return File.Exists(path) ? path : throw new FileNotFoundException("Bridge.Worker is not built", path);
    }

    /// <summary>The .NET-only worker executable (kernels only).</summary>
    public static WorkerProcess Start(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        Start(Executable(), [], arguments, environment);

    /// <summary>
    /// A worker for Python work, as the host starts one: the client's interpreter running
    /// bridge_worker.py (beside the worker executable), which loads .NET into itself.
    /// </summary>
    public static WorkerProcess StartInPython(string python, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        Start(python, [Path.Combine(Path.GetDirectoryName(Executable())!, "bridge_worker.py"), "--dotnet-root", DotnetRoot()], arguments, environment);

    /// <summary>The .NET installation these tests run on (three levels above the runtime's own directory).</summary>
    public static string DotnetRoot() =>
        new DirectoryInfo(Path.TrimEndingDirectorySeparator(System.Runtime.InteropServices.RuntimeEnvironment.GetRuntimeDirectory())).Parent!.Parent!.Parent!.FullName;

    private static WorkerProcess Start(string program, IEnumerable<string> leading, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment)
    {
        var start = new ProcessStartInfo(program)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in leading.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start Bridge.Worker");
        var worker = new WorkerProcess(process);
        process.OutputDataReceived += (_, line) => worker.Append(line.Data);
        process.ErrorDataReceived += (_, line) => worker.Append(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    /// <summary>Waits for the exit; the exit code, or throws TimeoutException (the worker is then killed).</summary>
    public async Task<int> WaitForExitAsync(TimeSpan limit)
    {
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"Bridge.Worker {Pid} did not exit within {limit.TotalSeconds} s; log:\n{Log}");
        }

        // The asynchronous readers may still hold the last lines.
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Signal(int signal)
    {
        using var kill = Process.Start("kill", [$"-{signal.ToString(CultureInfo.InvariantCulture)}", Pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}
