using System.Diagnostics;
using System.Globalization;
using Bridge.Client;
using Bridge.Contracts.V1;
using Grpc.Core;

namespace Bridge.Benchmarks.Infrastructure;

/// <summary>
/// A real Bridge.Host process (the published one in artifacts/host, which starts real
/// Bridge.Worker processes from artifacts/worker) on a private Unix socket. Stopped by its
/// pid with SIGTERM, so it stops its workers too.
/// </summary>
/// <remarks>
/// tests/Bridge.Host.Tests has a fuller HostProcess, but it lives in an xunit project;
/// this is the part a benchmark needs.
/// </remarks>
internal sealed class HostProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);

    private readonly Process _process;
    private readonly string _directory;

    private HostProcess(Process process, string directory, string socketPath)
    {
        _process = process;
        _directory = directory;
        Address = new BridgeAddress("unix:" + socketPath);
    }

    public BridgeAddress Address { get; }

    public static async Task<HostProcess> StartAsync(CancellationToken cancellationToken)
    {
        var directory = Directory.CreateTempSubdirectory("bridge-bench-").FullName;
        var socketPath = Path.Combine(directory, "host.sock");
        var start = new ProcessStartInfo(HostExecutable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add($"--Bridge:SocketPath={socketPath}");
        start.ArgumentList.Add("--Bridge:IdleTimeoutSeconds=0");
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start Bridge.Host");

        // Drained so a chatty host never blocks on a full pipe.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var host = new HostProcess(process, directory, socketPath);
        try
        {
            await host.WaitReadyAsync(cancellationToken);
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }

        return host;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync(CancellationToken.None);
            }

            using var grace = new CancellationTokenSource(StopGrace);
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(CancellationToken.None);
            }
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static string HostExecutable()
    {
        var path = Environment.GetEnvironmentVariable("GILBRIDGE_HOST_PATH");
        if (string.IsNullOrEmpty(path))
        {
            path = Path.Combine(RepositoryPaths.Root(), "artifacts", "host", "Bridge.Host");
        }

        return File.Exists(path) ? path : throw new FileNotFoundException("Bridge.Host is not published: run scripts/setup.sh", path);
    }

    private async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(StartLimit);
        using var channel = Address.CreateChannel();
        var sessions = new Sessions.SessionsClient(channel);
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"Bridge.Host exited during start-up with code {_process.ExitCode}");
            }

            try
            {
                await sessions.GetHostInfoAsync(new HostInfoRequest(), cancellationToken: limit.Token);
                return;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable)
            {
                // Not listening yet.
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), limit.Token);
        }
    }
}
