using System.Reflection;

namespace Bridge.Host.Hosting;

/// <summary>Who this host is, for status replies and logs.</summary>
internal sealed class HostIdentity(TimeProvider time)
{
    private readonly long _startedAt = time.GetTimestamp();

    public string Version { get; } =
        typeof(HostIdentity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public int Pid { get; } = Environment.ProcessId;

    /// <summary>This host in a cluster (its silo's name): machine and process.</summary>
    public string Id { get; } = ForThisProcess();

    public static string ForThisProcess() => $"{Environment.MachineName}:{Environment.ProcessId}";

    public TimeSpan Uptime => time.GetElapsedTime(_startedAt);

    public static int CpuCount => Environment.ProcessorCount;


}
