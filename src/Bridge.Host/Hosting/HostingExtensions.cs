using System.Net;
using System.Net.Sockets;
using Bridge.Core;
using Bridge.Core.Objects;
using Bridge.Host.Cluster;
using Bridge.Host.Services;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Bridge.Host.Hosting;

internal static class HostingExtensions
{
    /// <summary>Registers options, Orleans (in-process silo, localhost clustering), gRPC, health and reflection.</summary>
    public static WebApplicationBuilder AddBridgeHost(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<BridgeHostOptions>()
            .Bind(builder.Configuration.GetSection(BridgeHostOptions.SectionName))
            .PostConfigure(o =>
            {
                o.SocketPath = string.IsNullOrEmpty(o.SocketPath) ? RuntimePaths.DefaultSocketPath() : o.SocketPath;
                o.Token = string.IsNullOrEmpty(o.Token) ? Environment.GetEnvironmentVariable("GILBRIDGE_TOKEN") : o.Token;
                o.WorkerPath = string.IsNullOrEmpty(o.WorkerPath)
                    ? Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "worker", "Bridge.Worker"))
                    : o.WorkerPath;
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<BridgeHostOptions>, BridgeHostOptionsValidator>();
        services.AddSingleton(TimeProvider.System);
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        services.AddSingleton<HostIdentity>();
        services.AddHostedService<ListenerLifecycle>();
        services.AddHostedService<IdleShutdownService>();
        services.AddSingleton<BridgeCallInterceptor>();
        services.AddSingleton<BridgeMetrics>();
        services.AddSingleton<Execution.WorkerLauncher>();
        services.AddHostedService(sp => sp.GetRequiredService<Execution.WorkerLauncher>());
        services.AddSingleton<Execution.PoolRegistry>();
        services.AddSingleton<Inspection.HostStatusReader>();
        services.AddSingleton<ClusterPlacement>();

        var maxPayload = builder.Configuration.GetValue(
            $"{BridgeHostOptions.SectionName}:{nameof(BridgeHostOptions.MaxPayloadBytes)}", new BridgeHostOptions().MaxPayloadBytes);
        services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<BridgeCallInterceptor>();

            // Room for one maximal item plus the envelope, so the payload check (with its
            // precise error) sees an oversized item before the transport refuses it.
            grpc.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, maxPayload + (4L * 1024 * 1024));
            grpc.MaxSendMessageSize = null;
            grpc.EnableDetailedErrors = true;
        });
        services.AddGrpcReflection();
        services.AddGrpcHealthChecks().AddCheck("bridge", () => Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckResult.Healthy());
        services.AddMalformedRequestStatus();

        builder.Logging.AddFilter("Orleans", LogLevel.Warning);

        // The silo's GC advice and its start-up watchdog notes are noise for a per-user host.
        builder.Logging.AddFilter("Orleans.Runtime.Silo", LogLevel.Error);
        builder.Logging.AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });

        var settings = builder.Configuration.GetSection(BridgeHostOptions.SectionName).Get<BridgeHostOptions>() ?? new BridgeHostOptions();
        builder.UseOrleans(silo =>
        {
            silo.Configure<SiloOptions>(o => o.SiloName = HostIdentity.ForThisProcess());
            if (string.IsNullOrEmpty(settings.Cluster))
            {
                // No gateway: nothing outside this process talks to the silo directly.
                silo.UseLocalhostClustering(siloPort: settings.SiloPort > 0 ? settings.SiloPort : FreePort(IPAddress.Loopback), gatewayPort: 0);
            }
            else
            {
                JoinCluster(silo, settings);
            }

            silo.AddBridgeGrains();
        });

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            var options = kestrel.ApplicationServices.GetRequiredService<IOptions<BridgeHostOptions>>().Value;
            if (ListenerLifecycle.SomeoneListens(options.SocketPath))
            {
                throw new HostStartupException($"another Bridge host already answers on {options.SocketPath}");
            }

            RuntimePaths.PrepareSocketDirectory(options.SocketPath);

            // Message sizes are gRPC's to bound; a long-lived stream is one request body.
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.ListenUnixSocket(options.SocketPath, listen => listen.Protocols = HttpProtocols.Http2);
            if (options.TcpPort is { } port)
            {
                kestrel.Listen(IPAddress.Parse(options.TcpAddress), port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    if (!string.IsNullOrEmpty(options.TlsCertificate))
                    {
                        listen.UseHttps(options.LoadTlsCertificate());
                    }
                });
            }
        });
        return builder;
    }

    public static WebApplication MapBridgeServices(this WebApplication app)
    {
        app.UseRequestFramingCheck();
        app.MapGrpcService<SessionsService>();
        app.MapGrpcService<SynchronizationService>();
        app.MapGrpcService<QueuesService>();
        app.MapGrpcService<SharedValuesService>();
        app.MapGrpcService<ExecutionService>();
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        return app;
    }

    /// <summary>
    /// Redis membership, the silo at the host's TCP address (never picked automatically:
    /// Orleans would fall back to loopback), and failure detection tuned so a host killed
    /// outright is declared dead within a few seconds: probes time out after 1.5 s (up to
    /// 3 s while this host itself is starved), two missed probes suspect it and one vote
    /// declares it dead, and the table is re-read every 2 s. Objects' incarnations are
    /// recorded in the same Redis, so that a dead host's objects read as lost.
    /// </summary>
    private static void JoinCluster(ISiloBuilder silo, BridgeHostOptions settings)
    {
        var advertised = IPAddress.TryParse(settings.TcpAddress, out var address) ? address : IPAddress.Loopback;
        silo.UseRedisClustering(o => o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(settings.RedisEndpoint));
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = settings.ClusterId;
            o.ServiceId = "bridge";
        });
        silo.ConfigureEndpoints(advertised, settings.SiloPort > 0 ? settings.SiloPort : FreePort(advertised), gatewayPort: 0);
        silo.Services.AddSingleton<IObjectLedger>(_ => new RedisObjectLedger(settings.RedisEndpoint, settings.ClusterId));

        // An object's state lives in its one activation. The default directory can lose the
        // registrations a crashed host kept, and then a second activation of a living
        // object starts empty elsewhere (seen here: a queue on a living host read as lost
        // after another host was killed). The distributed directory recovers them from
        // every silo and keeps one activation per grain (Orleans marks it experimental).
#pragma warning disable ORLEANSEXP003
        silo.AddDistributedGrainDirectory();
#pragma warning restore ORLEANSEXP003

        // A dead host's grains re-register only after a lease that lets a host declared
        // dead by mistake learn it and stop (it re-reads the table every 2 s). Measured
        // here, the lease ends about (this - 6 s) after the declaration: 10 s gives such a
        // host two table reads, where the default 30 s made the first use of a lost
        // object wait ~24 s.
        silo.Configure<GrainDirectoryOptions>(o => o.RangeLeaseDuration = TimeSpan.FromSeconds(10));
        silo.Services.AddHostedService<PartOwnerWatch>();
        silo.Services.AddHostedService<DeadHostSweep>();
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1.5);
            o.MinProbeTimeout = TimeSpan.FromSeconds(1);
            o.MaxProbeTimeout = TimeSpan.FromSeconds(3);
            o.NumMissedProbesLimit = 2;
            o.NumVotesForDeathDeclaration = 1;
            o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
            o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);
            o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(30);
        });
    }

    /// <summary>A port free on <paramref name="address"/> now (the silo's, a worker's data socket's).</summary>
    internal static int FreePort(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
