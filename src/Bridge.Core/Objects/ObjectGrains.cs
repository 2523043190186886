namespace Bridge.Core.Objects;

/// <summary>The one place that maps an object family to its grain interface.</summary>
public static class ObjectGrains
{
    public static IBridgeObjectGrain Get(IGrainFactory grains, ObjectAddress address)
    {
        ArgumentNullException.ThrowIfNull(grains);
        return address.Family switch
        {
            ObjectFamily.Lock => grains.GetGrain<ILockGrain>(address.Name),
            ObjectFamily.Event => grains.GetGrain<IEventGrain>(address.Name),
            ObjectFamily.Condition => grains.GetGrain<IConditionGrain>(address.Name),
            ObjectFamily.Barrier => grains.GetGrain<IBarrierGrain>(address.Name),
            ObjectFamily.Queue => grains.GetGrain<IQueueGrain>(address.Name),
            ObjectFamily.Value => grains.GetGrain<IValueGrain>(address.Name),
            _ => throw new ArgumentOutOfRangeException(nameof(address), address.Family, "unknown object family"),
        };
    }
}
