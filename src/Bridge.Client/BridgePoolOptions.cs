using System.Diagnostics;
using System.Text.Json;
using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>How <see cref="BridgeSession.PoolAsync(int, BridgePoolOptions, CancellationToken)"/> makes a pool.</summary>
public sealed class BridgePoolOptions
{
    /// <summary>
    /// The interpreter the workers are, for Python functions; null: a kernel-only pool, whose
    /// workers are the .NET worker executable without Python (C# kernels only).
    /// </summary>
    public BridgePythonEnvironment? Python { get; init; }

    /// <summary>Shown in the host's logs.</summary>
    public string? Name { get; init; }

    /// <summary>A worker is replaced after this many tasks; 0: never.</summary>
    public int MaxTasksPerChild { get; init; }

    /// <summary>Where what the tasks print to stdout goes; null: this process's <see cref="Console.Out"/>.</summary>
    public TextWriter? StandardOutput { get; init; }

    /// <summary>Where what the tasks print to stderr goes; null: this process's <see cref="Console.Error"/>.</summary>
    public TextWriter? StandardError { get; init; }
}

/// <summary>
/// The Python interpreter a pool's workers are (a worker is that interpreter with .NET
/// loaded into it), and what it sees: its <c>sys.path</c>, working directory and variables.
/// The interpreter needs gilbridge importable (installed in it, or on <see cref="SysPath"/>).
/// </summary>
public sealed class BridgePythonEnvironment
{
    /// <summary>The interpreter: an absolute path, or a name looked up on PATH (default "python3").</summary>
    public string Executable { get; init; } = "python3";

    /// <summary>
    /// Entries put before the interpreter's own <c>sys.path</c> (as PYTHONPATH does): where
    /// the modules of the functions live. The working directory follows them, as for
    /// <c>python -c</c>.
    /// </summary>
    public IReadOnlyList<string> SysPath { get; init; } = [];

    /// <summary>The workers' working directory; null: this process's current directory.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Variables set in the workers' <c>os.environ</c>.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The contract's form: the executable resolved to an absolute path (the host starts it
    /// with its own PATH) and the full <c>sys.path</c>, the interpreter's own asked from it
    /// (a worker's <c>sys.path</c> is replaced by exactly this list).
    /// </summary>
    internal async Task<PythonEnvironment> ResolveAsync(CancellationToken cancellationToken)
    {
        var executable = ResolveExecutable(Executable);
        var workingDirectory = Path.GetFullPath(WorkingDirectory ?? System.Environment.CurrentDirectory);
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("import json, sys; print(json.dumps(sys.path))");
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {executable}");
        string output;
        try
        {
            var reading = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var errors = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            output = await reading.ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"{executable} could not report its sys.path (exit {process.ExitCode}): {await errors.ConfigureAwait(false)}");
            }
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw;
        }

        var environment = new PythonEnvironment { Executable = executable, WorkingDirectory = workingDirectory };
        environment.SysPath.Add(SysPath.Select(Path.GetFullPath));
        // As `python -c` sees it: "" (the working directory) first, then the interpreter's own.
        environment.SysPath.Add((JsonSerializer.Deserialize<string[]>(output) ?? []).Select(p => p.Length == 0 ? workingDirectory : p));
        foreach (var (key, value) in Environment)
        {
            environment.Environment[key] = value;
        }

        return environment;
    }

    private static string ResolveExecutable(string executable)
    {
        if (executable.Contains('/', StringComparison.Ordinal))
        {
            return Path.GetFullPath(executable);
        }

        foreach (var directory in (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"no '{executable}' on PATH", executable);
    }
}
