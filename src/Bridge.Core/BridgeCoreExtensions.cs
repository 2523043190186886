using Bridge.Core.Objects;
using Bridge.Core.Objects.Runtime;
using Bridge.Core.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Orleans.Hosting;

namespace Bridge.Core;

public static class BridgeCoreExtensions
{
    /// <summary>
    /// Registers what the grains need from the container. The grain classes themselves
    /// are found by Orleans in this assembly.
    /// </summary>
    public static ISiloBuilder AddBridgeGrains(this ISiloBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddBridgeGrains();
        return builder;
    }

    /// <inheritdoc cref="AddBridgeGrains(ISiloBuilder)"/>
    public static IServiceCollection AddBridgeGrains(this IServiceCollection services)
    {
        services.TryAddSingleton<SessionTracker>();
        services.TryAddSingleton<ObjectCatalog>();
        services.TryAddSingleton<IObjectLedger, NoObjectLedger>();
        services.TryAddSingleton(services => new SharedSegments(
            SharedSegments.DefaultDirectory(), services.GetRequiredService<ILogger<SharedSegments>>()));
        return services;
    }
}
