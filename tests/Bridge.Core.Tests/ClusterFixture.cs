using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;

// The tests measure real waits and timeouts: running them one at a time keeps those
// measurements honest on a small machine (and xunit's Timeout is only reliable serially).
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Bridge.Core.Tests;

/// <summary>One in-process silo with the Bridge grains, shared by every test class.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan CollectionAge = TimeSpan.FromSeconds(1);

    private InProcessTestCluster? _cluster;

    public IClusterClient Client => Cluster.Client;

    public MemoryObjectLedger Ledger => (MemoryObjectLedger)Cluster.Silos[0].ServiceProvider.GetRequiredService<IObjectLedger>();

    public SessionTracker Tracker => Cluster.Silos[0].ServiceProvider.GetRequiredService<SessionTracker>();

    public ObjectCatalog Catalog => Cluster.Silos[0].ServiceProvider.GetRequiredService<ObjectCatalog>();

    private InProcessTestCluster Cluster => _cluster ?? throw new InvalidOperationException("the cluster is not deployed");

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddSingleton<IObjectLedger, MemoryObjectLedger>();
            silo.AddBridgeGrains();

            // Idle grains are collected within seconds instead of 15 minutes, so tests can
            // show that live sessions and objects are kept.
            silo.Configure<GrainCollectionOptions>(options =>
            {
                options.CollectionQuantum = TimeSpan.FromMilliseconds(500);
                options.CollectionAge = CollectionAge;
            });
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        if (_cluster is { } cluster)
        {
            await cluster.StopAllSilosAsync();
            await cluster.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
