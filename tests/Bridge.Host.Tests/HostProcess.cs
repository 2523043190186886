using System.Diagnostics;
using Bridge.Client;
using Bridge.Contracts.V1;
using Grpc.Core;

namespace Bridge.Host.Tests;

/// <summary>
/// A real Bridge.Host process on a private socket (and optionally TCP), started for a test
/// class and stopped by its pid.
/// </summary>
public sealed class HostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output = new();

    private HostProcess(Process process, string directory, string socketPath, int? tcpPort, string? token)
    {
        _process = process;
        _directory = directory;
        SocketPath = socketPath;
        TcpPort = tcpPort;
        Token = token;
    }

    public string SocketPath { get; }

    public int? TcpPort { get; }

    public string? Token { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What the host has written to stdout and stderr so far (its log), one line each.</summary>
    public string Output => string.Join('\n', _output);

    public BridgeAddress Address => new("unix:" + SocketPath);

    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Bridge.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Bridge.sln) above " + AppContext.BaseDirectory);
    }

    public static string HostExecutable()
    {
        var path = Environment.GetEnvironmentVariable("GILBRIDGE_HOST_PATH");
        if (string.IsNullOrEmpty(path))
        {
            path = Path.Combine(RepositoryRoot(), "artifacts", "host", "Bridge.Host");
        }

        return File.Exists(path) ? path : throw new FileNotFoundException("Bridge.Host is not published: run scripts/setup.sh", path);
    }

    public static async Task<HostProcess> StartAsync(double leaseSeconds = 2, long? maxPayloadBytes = null, int? tcpPort = null, string? token = null)
    {
        var directory = Directory.CreateTempSubdirectory("bridge-host-test-").FullName;
        var socketPath = Path.Combine(directory, "host.sock");
        var start = new ProcessStartInfo(HostExecutable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add($"--Bridge:SocketPath={socketPath}");
        start.ArgumentList.Add($"--Bridge:LeaseSeconds={leaseSeconds}");
        start.ArgumentList.Add("--Bridge:IdleTimeoutSeconds=0");
        if (maxPayloadBytes is { } max)
        {
            start.ArgumentList.Add($"--Bridge:MaxPayloadBytes={max}");
        }

        if (tcpPort is { } port)
        {
            start.ArgumentList.Add($"--Bridge:TcpPort={port}");
            start.ArgumentList.Add($"--Bridge:Token={token}");
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start Bridge.Host");
        var host = new HostProcess(process, directory, socketPath, tcpPort, token);
        process.OutputDataReceived += (_, line) => host.Keep(line.Data);
        process.ErrorDataReceived += (_, line) => host.Keep(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await host.WaitReadyAsync(TimeSpan.FromSeconds(30));
        return host;
    }

    public async Task<HostInfo> InfoAsync(CancellationToken cancellationToken)
    {
        using var channel = Address.CreateChannel();
        return await new Sessions.SessionsClient(channel).GetHostInfoAsync(new HostInfoRequest(), cancellationToken: cancellationToken);
    }

    /// <summary>Sends SIGTERM and waits for the exit (SIGKILL after <paramref name="grace"/>); returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan grace)
    {
        if (!_process.HasExited)
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var graceful = new CancellationTokenSource(grace);
            try
            {
                await _process.WaitForExitAsync(graceful.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(CancellationToken.None);
            }
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        await TerminateAsync(TimeSpan.FromSeconds(15));
        _process.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    private async Task WaitReadyAsync(TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"Bridge.Host exited during start-up with code {_process.ExitCode}");
            }

            if (File.Exists(SocketPath))
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await InfoAsync(timeout.Token);
                    return;
                }
                catch (RpcException)
                {
                    // Not serving yet.
                }
                catch (OperationCanceledException)
                {
                    // Not serving yet.
                }
            }

            await Task.Delay(50);
        }

        await DisposeAsync();
        throw new TimeoutException($"Bridge.Host did not answer on {SocketPath} within {limit}");
    }
}

/// <summary>One host shared by a test class.</summary>
public sealed class HostFixture : IAsyncLifetime
{
    public HostProcess Host { get; private set; } = null!;

    public async Task InitializeAsync() => Host = await HostProcess.StartAsync(leaseSeconds: 1.5, maxPayloadBytes: 64 * 1024);

    public async Task DisposeAsync() => await Host.DisposeAsync();
}
