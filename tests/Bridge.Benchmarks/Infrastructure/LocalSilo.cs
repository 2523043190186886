using System.Net;
using System.Net.Sockets;
using Bridge.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bridge.Benchmarks.Infrastructure;

/// <summary>
/// An in-process Orleans silo with the Bridge grains, set up as Bridge.Host sets up its
/// own (localhost clustering, no gateway), so grain calls here take the same path as the
/// host's gRPC services do, minus gRPC.
/// </summary>
internal sealed class LocalSilo(IHost host) : IAsyncDisposable
{
    private static readonly TimeSpan StopLimit = TimeSpan.FromSeconds(15);

    public IGrainFactory Grains { get; } = host.Services.GetRequiredService<IGrainFactory>();

    public static async Task<LocalSilo> StartAsync(CancellationToken cancellationToken)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort: FreeLoopbackPort(), gatewayPort: 0);
            silo.AddBridgeGrains();
        });
        var host = builder.Build();
        await host.StartAsync(cancellationToken);
        return new LocalSilo(host);
    }

    public async ValueTask DisposeAsync()
    {
        using var limit = new CancellationTokenSource(StopLimit);
        await host.StopAsync(limit.Token);
        host.Dispose();
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
