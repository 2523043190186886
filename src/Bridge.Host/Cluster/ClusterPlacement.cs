using Bridge.Host.Execution;
using Bridge.Host.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Runtime.Placement;

namespace Bridge.Host.Cluster;

/// <summary>
/// Where a pool's workers go in a cluster: this host's free cores first, the rest on the
/// other active hosts with the most free cores. Outside a cluster everything is local.
/// </summary>
internal sealed class ClusterPlacement(
    IGrainFactory grains,
    IClusterMembershipService membership,
    ILocalSiloDetails silo,
    IOptions<BridgeHostOptions> options,
    ILogger<ClusterPlacement> logger)
{
    // A host that does not say how free it is within this takes no share.
    private static readonly TimeSpan CapacityWait = TimeSpan.FromSeconds(2);

    public bool Enabled => options.Value.InCluster;

    /// <summary>This host's silo, as the agents of other hosts know it.</summary>
    public string LocalSilo => silo.SiloAddress.ToParsableString();

    /// <summary>
    /// The shares of a pool of <paramref name="processes"/> workers that go to other hosts
    /// (silo, count), when this host has only <paramref name="localFree"/> free cores; what
    /// no host can take stays here (more workers than cores, as the stdlib allows).
    /// </summary>
    public async Task<IReadOnlyList<(string Silo, int Count)>> PlanAsync(int processes, int localFree, CancellationToken cancellationToken)
    {
        var local = Math.Max(1, localFree);
        if (!Enabled || processes <= local)
        {
            return [];
        }

        var others = membership.CurrentSnapshot.Members.Values
            .Where(member => member.Status == SiloStatus.Active && !member.SiloAddress.Equals(silo.SiloAddress))
            .Select(member => member.SiloAddress.ToParsableString())
            .ToArray();
        var free = await Task.WhenAll(others.Select(async key => (Silo: key, Free: await FreeCapacityAsync(key, cancellationToken))));
        var left = processes - local;
        var plan = new List<(string, int)>();
        foreach (var (key, capacity) in free.Where(host => host.Free > 0).OrderByDescending(host => host.Free))
        {
            var take = Math.Min(capacity, left);
            plan.Add((key, take));
            left -= take;
            if (left == 0)
            {
                break;
            }
        }

        return plan;
    }

    /// <summary>Calls the agent of the host <paramref name="siloKey"/>, activating it on that host.</summary>
    public async Task<T> CallAgentAsync<T>(string siloKey, Func<IHostAgentGrain, Task<T>> call)
    {
        RequestContext.Set(IPlacementDirector.PlacementHintKey, SiloAddress.FromParsableString(siloKey));
        try
        {
            return await call(grains.GetGrain<IHostAgentGrain>(siloKey));
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }
    }

    /// <summary>Closes or terminates a pool's parts on other hosts; a host that cannot be told is logged (its owner watch ends them).</summary>
    public async Task EndPartsAsync(IReadOnlyList<(string Silo, string PoolId)> parts, bool terminate)
    {
        foreach (var (key, poolId) in parts)
        {
            try
            {
                await CallAgentAsync(key, async agent =>
                {
                    await agent.EndPart(poolId, terminate);
                    return true;
                });
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                Log.PoolPartNotEnded(logger, poolId, key, exception.Message);
            }
        }
    }

    private async Task<int> FreeCapacityAsync(string siloKey, CancellationToken cancellationToken)
    {
        try
        {
            return await CallAgentAsync(siloKey, agent => agent.FreeCapacity()).WaitAsync(CapacityWait, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            Log.HostCapacityUnknown(logger, siloKey, exception.Message);
            return 0;
        }
    }
}

/// <summary>Ends the pool parts this host runs for a host of the cluster once that host is declared dead.</summary>
internal sealed class PartOwnerWatch(IClusterMembershipService membership, PoolRegistry pools) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
            {
                foreach (var member in snapshot.Members.Values.Where(member => member.Status == SiloStatus.Dead))
                {
                    pools.TerminatePartsOwnedBy(member.SiloAddress.ToParsableString());
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
