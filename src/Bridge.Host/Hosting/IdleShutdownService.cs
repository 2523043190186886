using Bridge.Core.Sessions;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Hosting;

/// <summary>Stops the host after the configured time with no session, so an auto-started host does not linger.</summary>
internal sealed class IdleShutdownService(
    SessionTracker tracker,
    IHostApplicationLifetime lifetime,
    IOptions<BridgeHostOptions> options,
    TimeProvider time,
    ILogger<IdleShutdownService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var idle = TimeSpan.FromSeconds(options.Value.IdleTimeoutSeconds);
        if (idle <= TimeSpan.Zero)
        {
            return;
        }

        var period = TimeSpan.FromMilliseconds(Math.Clamp(idle.TotalMilliseconds / 4, 100, 1000));
        using var timer = new PeriodicTimer(period, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (tracker.ActiveCount == 0 && time.GetUtcNow() - tracker.LastChange >= idle)
                {
                    Log.IdleShutdown(logger, idle.TotalSeconds);
                    lifetime.StopApplication();
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Host shutting down.
        }
    }
}
