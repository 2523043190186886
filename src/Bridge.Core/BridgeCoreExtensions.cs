using Bridge.Core.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
        return services;
    }
}
