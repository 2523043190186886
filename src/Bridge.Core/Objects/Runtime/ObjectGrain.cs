using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// What every object grain shares: its membership (the sessions that reference it),
/// staying active while it exists, and being freed (state reset, then deactivated) once
/// the last session has left.
/// </summary>
internal abstract class ObjectGrain : Grain
{
    private readonly ILogger _logger;
    private readonly ObjectFamily _family;

    /// <param name="noun">How errors name the family, e.g. "Lock/RLock/Semaphore".</param>
    protected ObjectGrain(IGrainFactory grains, ObjectFamily family, string noun, ILogger logger)
    {
        _logger = logger;
        _family = family;
        Membership = new ObjectMembership(
            grains,
            ServiceProvider.GetRequiredService<IObjectLedger>(),
            ServiceProvider.GetRequiredService<ILocalSiloDetails>().Name,
            logger,
            new ObjectAddress(family, this.GetPrimaryKeyString()),
            noun,
            onCreated: () => DelayDeactivation(Timeout.InfiniteTimeSpan),
            onFreed: Free);
    }

    protected ObjectMembership Membership { get; }

    /// <summary>Learns whether an earlier incarnation of this object died with its host.</summary>
    public override Task OnActivateAsync(CancellationToken cancellationToken) => Membership.Recover(cancellationToken);

    /// <summary>The session stops referencing the object (its proxy was collected).</summary>
    public Task Detach(string sessionId)
    {
        Membership.Leave(sessionId, ended: false);
        return Task.CompletedTask;
    }

    /// <summary>Forgets the state: the last session has left.</summary>
    protected abstract void ResetState();

    private void Free()
    {
        ResetState();
        Log.ObjectFreed(_logger, _family, Membership.Address.Name);
        DelayDeactivation(TimeSpan.Zero);
        // An Open racing the last Leave keeps this activation (and its fresh state).
        if (!Membership.IsAttaching)
        {
            this.DeactivateOnIdle();
        }
    }
}
