using System.Diagnostics;
using System.Text.Json;

namespace Bridge.Worker.Tests;

/// <summary>
/// The client's interpreter (the repository's .venv, or GILBRIDGE_PYTHON) and the test
/// payloads it makes with cloudpickle and gilbridge._codec (payloads.py), produced once.
/// </summary>
public sealed class PythonPayloads : IAsyncLifetime
{
    private JsonElement _root;

    public string Executable { get; private set; } = "";

    public IReadOnlyList<string> SysPath { get; private set; } = [];

    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Bridge.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Bridge.sln) above " + AppContext.BaseDirectory);
    }

    public static string Python()
    {
        var python = Environment.GetEnvironmentVariable("GILBRIDGE_PYTHON");
        if (string.IsNullOrEmpty(python))
        {
            python = Path.Combine(RepositoryRoot(), ".venv", "bin", "python");
        }

        return File.Exists(python) ? python : throw new FileNotFoundException("no Python: create .venv (scripts/run-tests.sh) or set GILBRIDGE_PYTHON", python);
    }

    public byte[] Bytes(string name) => Convert.FromBase64String(_root.GetProperty(name).GetString()!);

    public IReadOnlyList<byte[]> Items(string name) =>
        [.. _root.GetProperty(name).EnumerateArray().Select(e => Convert.FromBase64String(e.GetString()!))];

    public async Task InitializeAsync()
    {
        var start = new ProcessStartInfo(Python())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "payloads.py"));
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start Python");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"payloads.py failed ({process.ExitCode}): {await stderr}");
        }

        _root = JsonDocument.Parse(await stdout).RootElement.Clone();
        Executable = _root.GetProperty("executable").GetString()!;
        SysPath = [.. _root.GetProperty("sys_path").EnumerateArray().Select(e => e.GetString()!)];
    }

    public Task DisposeAsync() => Task.CompletedTask;
}
