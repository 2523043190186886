using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Hosting;

/// <summary>
/// Owns the files beside the listener: makes the Unix socket private once Kestrel has
/// bound it, writes the pid file when serving, removes both at shutdown.
/// </summary>
internal sealed class ListenerLifecycle(
    IOptions<BridgeHostOptions> options,
    HostIdentity identity,
    IHostApplicationLifetime lifetime,
    Microsoft.AspNetCore.Hosting.Server.IServer server,
    ILogger<ListenerLifecycle> logger) : IHostedService
{
    private readonly BridgeHostOptions _options = options.Value;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(OnStarted);
        lifetime.ApplicationStopped.Register(OnStopped);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>True when a live host already answers on the socket (then this one must not steal it).</summary>
    public static bool SomeoneListens(string socketPath)
    {
        if (!File.Exists(socketPath))
        {
            return false;
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(socketPath));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private void OnStarted()
    {
        RuntimePaths.RestrictSocket(_options.SocketPath);
        if (!string.IsNullOrEmpty(_options.PidFile))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_options.PidFile)!);
            File.WriteAllText(_options.PidFile, identity.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var addresses = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses;
        var tcp = addresses?.FirstOrDefault(a => a.StartsWith("http://", StringComparison.Ordinal) && !a.Contains("unix:", StringComparison.Ordinal));
        Log.Listening(logger, identity.Version, identity.Pid, _options.SocketPath, tcp is null ? "" : $" and {tcp}");
        if (logger.IsEnabled(LogLevel.Debug))
        {
            // What a cold start costs (the first Pool.map of a script with no host waits for it).
            using var process = System.Diagnostics.Process.GetCurrentProcess();
            Log.StartupCost(
                logger,
                (DateTime.Now - process.StartTime).TotalMilliseconds,
                process.TotalProcessorTime.TotalMilliseconds,
                System.Runtime.JitInfo.GetCompiledMethodCount(),
                System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds);
        }
    }

    private void OnStopped()
    {
        TryDelete(_options.SocketPath);
        if (!string.IsNullOrEmpty(_options.PidFile) && File.Exists(_options.PidFile)
            && File.ReadAllText(_options.PidFile).Trim() == identity.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            TryDelete(_options.PidFile);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: a stale file is removed by the next host anyway.
        }
    }
}
