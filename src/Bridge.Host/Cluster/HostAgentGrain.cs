using Bridge.Contracts.V1;
using Bridge.Host.Execution;
using Google.Protobuf;
using Orleans.Concurrency;

namespace Bridge.Host.Cluster;

/// <summary>
/// One host's pools, as the other hosts of the cluster see them: keyed by the host's silo
/// address and activated on that silo (<see cref="ClusterPlacement"/> gives the placement
/// hint), so a call reaches the host whose workers it is about.
/// </summary>
internal interface IHostAgentGrain : IGrainWithStringKey
{
    /// <summary>How many more workers this host's cores can take.</summary>
    Task<int> FreeCapacity();

    /// <summary>This host's worker processes, and how many serve pools now.</summary>
    Task<HostWorkers> Workers();

    /// <summary>
    /// Creates a direct pool here as a part of a pool of the host <paramref name="ownerSilo"/>:
    /// <paramref name="request"/> and the answer are a serialized CreatePoolRequest and PoolInfo.
    /// </summary>
    Task<byte[]> CreatePart(byte[] request, string ownerSilo, CancellationToken cancellationToken);

    /// <summary>Closes (or terminates) a part created by <see cref="CreatePart"/>.</summary>
    Task EndPart(string poolId, bool terminate);
}

[GenerateSerializer, Immutable, Alias("Bridge.HostWorkers")]
internal readonly record struct HostWorkers([property: Id(0)] int Running, [property: Id(1)] int InPools);

[Reentrant]
internal sealed class HostAgentGrain(PoolRegistry pools, WorkerLauncher launcher, ILocalSiloDetails silo) : Grain, IHostAgentGrain
{
    public Task<HostWorkers> Workers()
    {
        CheckPlacement();
        return Task.FromResult(new HostWorkers(launcher.RunningWorkers, pools.WorkersInPools));
    }

    public Task<int> FreeCapacity()
    {
        CheckPlacement();
        return Task.FromResult(pools.FreeCores);
    }

    public async Task<byte[]> CreatePart(byte[] request, string ownerSilo, CancellationToken cancellationToken)
    {
        CheckPlacement();
        var info = await pools.CreatePartAsync(CreatePoolRequest.Parser.ParseFrom(request), ownerSilo, cancellationToken);
        return info.ToByteArray();
    }

    public Task EndPart(string poolId, bool terminate)
    {
        CheckPlacement();
        pools.EndPart(poolId, terminate);
        return Task.CompletedTask;
    }

    // The hint places the activation on the host it is keyed by; anywhere else (that host
    // had left when the hint was read) it would speak for the wrong workers.
    private void CheckPlacement()
    {
        if (silo.SiloAddress.ToParsableString() != this.GetPrimaryKeyString())
        {
            DeactivateOnIdle();
            throw new InvalidOperationException($"the host {this.GetPrimaryKeyString()} is not a member of the cluster any more");
        }
    }
}
