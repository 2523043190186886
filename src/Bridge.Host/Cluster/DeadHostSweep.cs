using Bridge.Core.Objects;
using Bridge.Host.Hosting;

namespace Bridge.Host.Cluster;

/// <summary>
/// Once a host of the cluster is declared dead, ends its sessions on this host's objects:
/// their locks are released, their leased queue items go back to the head of their
/// queues, their waiters and references go, as when a session's lease lapses. The session
/// grains that would have said so died with that host; without this a lock held through
/// it would stay held for good, and its leased items would never come back.
/// A host that stops gracefully (SIGTERM, <c>host stop</c>) writes its own status first:
/// ShuttingDown (or Stopping, when its stop is not given time), gossiped to the others at
/// once, then Dead. One that dies is only ever Active, then Dead (written by the hosts
/// that voted it dead). So a Dead host last seen leaving has left (logged as such); any
/// other was declared dead (a warning). Its sessions end here either way.
/// </summary>
internal sealed class DeadHostSweep(
    IClusterMembershipService membership,
    IGrainFactory grains,
    ObjectCatalog catalog,
    ILogger<DeadHostSweep> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Hosts dead before this one joined held no sessions on its objects.
        var swept = membership.CurrentSnapshot.Members.Values
            .Where(member => member.Status == SiloStatus.Dead)
            .Select(member => member.SiloAddress)
            .ToHashSet();
        var leaving = new HashSet<SiloAddress>();
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
            {
                foreach (var member in snapshot.Members.Values)
                {
                    if (member.Status is SiloStatus.ShuttingDown or SiloStatus.Stopping)
                    {
                        leaving.Add(member.SiloAddress);
                    }
                    else if (member.Status == SiloStatus.Dead && swept.Add(member.SiloAddress))
                    {
                        await SweepAsync(member.Name, member.SiloAddress.ToParsableString(), left: leaving.Remove(member.SiloAddress));
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task SweepAsync(string host, string silo, bool left)
    {
        var objects = catalog.Addresses();
        var ended = await Task.WhenAll(objects.Select(async address =>
        {
            try
            {
                return await ObjectGrains.Get(grains, address).HostDied(silo);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                Log.DeadHostSessionsNotEnded(logger, address.Family.ToString(), address.Name, host, exception.Message);
                return 0;
            }
        }));
        if (left)
        {
            Log.HostLeft(logger, host, silo, ended.Sum(), ended.Count(count => count > 0));
        }
        else
        {
            Log.HostDeclaredDead(logger, host, silo, ended.Sum(), ended.Count(count => count > 0));
        }
    }
}
