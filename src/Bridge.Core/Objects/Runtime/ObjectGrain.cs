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
    private readonly ObjectCatalog _catalog;

    /// <param name="noun">How errors name the family, e.g. "Lock/RLock/Semaphore".</param>
    protected ObjectGrain(IGrainFactory grains, ObjectFamily family, string noun, ILogger logger)
    {
        _logger = logger;
        _family = family;
        _catalog = ServiceProvider.GetRequiredService<ObjectCatalog>();
        var address = new ObjectAddress(family, this.GetPrimaryKeyString());
        Membership = new ObjectMembership(
            grains,
            ServiceProvider.GetRequiredService<IObjectLedger>(),
            ServiceProvider.GetRequiredService<ILocalSiloDetails>().Name,
            logger,
            address,
            noun,
            onCreated: () =>
            {
                DelayDeactivation(Timeout.InfiniteTimeSpan);
                CatalogEntry = _catalog.Created(address);
            },
            onFreed: Free);
    }

    protected ObjectMembership Membership { get; }

    /// <summary>This object in the silo's catalog while it exists.</summary>
    private protected CatalogEntry? CatalogEntry { get; private set; }

    /// <summary>Learns whether an earlier incarnation of this object died with its host.</summary>
    public override Task OnActivateAsync(CancellationToken cancellationToken) => Membership.Recover(cancellationToken);

    /// <summary>
    /// An activation that ends without being freed (its silo stops) takes its state along:
    /// the catalog must not go on listing it.
    /// </summary>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        ForgetCatalogEntry();
        return Task.CompletedTask;
    }

    /// <summary>See <see cref="IBridgeObjectGrain.SessionEnded"/>.</summary>
    public abstract Task SessionEnded(string sessionId);

    /// <summary>See <see cref="IBridgeObjectGrain.HostDied"/>.</summary>
    public async Task<int> HostDied(string silo)
    {
        var sessions = Membership.SessionsOf(silo);
        foreach (var sessionId in sessions)
        {
            await SessionEnded(sessionId);
        }

        return sessions.Count;
    }

    /// <summary>
    /// The session stops referencing the object (its last proxy was collected). A session
    /// can still hold a unit, a lock, leased items or a waiting call here through a proxy
    /// counted elsewhere (a forked child uses the proxies it inherited, counted in its
    /// parent's connection): while other sessions use the object it then stays a member,
    /// so that its end gives back what it holds instead of leaking it (false). The last
    /// member leaving frees the object and everything held with it.
    /// </summary>
    public Task<bool> Detach(string sessionId)
    {
        if (Membership.IsCreated && Membership.SessionCount > 1 && Membership.IsMember(sessionId) && Holds(sessionId))
        {
            return Task.FromResult(false);
        }

        Membership.Leave(sessionId, ended: false);
        return Task.FromResult(true);
    }

    /// <summary>Whether the session holds something here that must be given back when it ends.</summary>
    protected virtual bool Holds(string sessionId) => false;

    public Task<ObjectStatus?> GetStatus()
    {
        if (!Membership.IsCreated)
        {
            return Task.FromResult<ObjectStatus?>(null);
        }

        var detail = Inspect(out var waiters);
        return Task.FromResult<ObjectStatus?>(new ObjectStatus(Membership.Address, Membership.SessionCount, waiters, detail));
    }

    /// <summary>Forgets the state: the last session has left.</summary>
    protected abstract void ResetState();

    /// <summary>The family's state for <see cref="GetStatus"/>, and how many calls wait on it.</summary>
    private protected abstract ObjectDetail Inspect(out int waiters);

    private void Free()
    {
        ResetState();
        ForgetCatalogEntry();
        Log.ObjectFreed(_logger, _family, Membership.Address.Name);
        DelayDeactivation(TimeSpan.Zero);
        // An Open racing the last Leave keeps this activation (and its fresh state).
        if (!Membership.IsAttaching)
        {
            this.DeactivateOnIdle();
        }
    }

    private void ForgetCatalogEntry()
    {
        if (CatalogEntry is { } entry)
        {
            _catalog.Freed(entry);
            CatalogEntry = null;
        }
    }
}
