using System.Net;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Hosting;

/// <summary>The host's settings, section "Bridge" (command line: --Bridge:SocketPath=...).</summary>
internal sealed class BridgeHostOptions
{
    public const string SectionName = "Bridge";

    /// <summary>Unix socket to listen on; empty: the per-user default (see <see cref="RuntimePaths"/>).</summary>
    public string SocketPath { get; set; } = "";

    /// <summary>Also listen on TCP at this port (0: pick a free one); null: no TCP listener.</summary>
    public int? TcpPort { get; set; }

    public string TcpAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// A PEM certificate (with <see cref="TlsKey"/>) that makes the TCP port speak TLS;
    /// empty: plain TCP (keep it on a private network). The token is required either way.
    /// </summary>
    public string TlsCertificate { get; set; } = "";

    /// <summary>The PEM private key of <see cref="TlsCertificate"/>.</summary>
    public string TlsKey { get; set; } = "";

    /// <summary>Loads <see cref="TlsCertificate"/> and <see cref="TlsKey"/> (throws when they do not make a certificate with its key).</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2 LoadTlsCertificate() =>
        System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(TlsCertificate, TlsKey);

    /// <summary>Bearer token every TCP call must carry; required when TCP is on (or env GILBRIDGE_TOKEN).</summary>
    public string? Token { get; set; }

    /// <summary>Exit after this long with no session; 0: never.</summary>
    public double IdleTimeoutSeconds { get; set; } = 300;

    /// <summary>A session whose client has not renewed its lease for this long has ended.</summary>
    public double LeaseSeconds { get; set; } = 5;

    /// <summary>Largest queue item or shared-value write.</summary>
    public long MaxPayloadBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>File to write the host's pid to while it runs; empty: none.</summary>
    public string PidFile { get; set; } = "";

    /// <summary>Orleans silo port (on loopback, or on <see cref="TcpAddress"/> in a cluster); 0: a free one.</summary>
    public int SiloPort { get; set; }

    /// <summary>
    /// The Redis holding the cluster's membership table, "redis://HOST:PORT": the host joins
    /// that cluster, its silo reachable at <see cref="TcpAddress"/>:<see cref="SiloPort"/>.
    /// Empty: a single-machine host.
    /// </summary>
    public string Cluster { get; set; } = "";

    /// <summary>Hosts with the same <see cref="Cluster"/> and id form one cluster.</summary>
    public string ClusterId { get; set; } = "bridge";

    /// <summary>Whether this host joins a cluster (<see cref="Cluster"/> is set).</summary>
    public bool InCluster => !string.IsNullOrEmpty(Cluster);

    /// <summary>"HOST:PORT" of <see cref="Cluster"/>, as StackExchange.Redis takes it.</summary>
    public string RedisEndpoint => Cluster.StartsWith(RedisScheme, StringComparison.Ordinal) ? Cluster[RedisScheme.Length..] : Cluster;

    public const string RedisScheme = "redis://";

    /// <summary>
    /// The Bridge.Worker executable (kernel-only workers); empty: artifacts/worker/Bridge.Worker
    /// beside the host's folder. A Python worker is the client's interpreter running
    /// bridge_worker.py from the same folder.
    /// </summary>
    public string WorkerPath { get; set; } = "";

    /// <summary>Idle workers kept started per Python environment.</summary>
    public int WarmWorkers { get; set; } = 2;

    /// <summary>
    /// How long the workers kept beyond <see cref="WarmWorkers"/> (grown to a burst of an
    /// interpreter, or prepared for a session) stay after their last use: then they stop.
    /// </summary>
    public double IdleWorkerSeconds { get; set; } = 120;

    /// <summary>How long a new worker may take to connect.</summary>
    public double WorkerStartSeconds { get; set; } = 60;

    /// <summary>
    /// A Python interpreter (sys.executable) whose warm workers start with the host, before
    /// any client asks: a client that starts the host passes its own, so its first pool
    /// does not wait for a cold worker. Empty: none.
    /// </summary>
    public string PrewarmPythonExecutable { get; set; } = "";

    public TimeSpan Lease => TimeSpan.FromSeconds(LeaseSeconds);
}

internal sealed class BridgeHostOptionsValidator : IValidateOptions<BridgeHostOptions>
{
    public ValidateOptionsResult Validate(string? name, BridgeHostOptions options)
    {
        var failures = new List<string>();
        if (!Path.IsPathFullyQualified(options.SocketPath))
        {
            failures.Add($"Bridge:SocketPath must be an absolute path (got '{options.SocketPath}')");
        }

        if (options.TcpPort is { } port)
        {
            if (port is < 0 or > 65535)
            {
                failures.Add($"Bridge:TcpPort must be 0..65535 (got {port})");
            }

            if (string.IsNullOrWhiteSpace(options.Token) || options.Token.Length < 16)
            {
                failures.Add("Bridge:Token (or GILBRIDGE_TOKEN) of at least 16 characters is required when Bridge:TcpPort is set");
            }

            if (!IPAddress.TryParse(options.TcpAddress, out _))
            {
                failures.Add($"Bridge:TcpAddress must be an IP address (got '{options.TcpAddress}')");
            }
        }

        if (!string.IsNullOrEmpty(options.TlsCertificate) || !string.IsNullOrEmpty(options.TlsKey))
        {
            if (options.TcpPort is null)
            {
                failures.Add("Bridge:TlsCertificate is for the TCP port: set Bridge:TcpPort too");
            }

            try
            {
                using var certificate = options.LoadTlsCertificate();
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or ArgumentException or System.Security.Cryptography.CryptographicException)
            {
                failures.Add($"Bridge:TlsCertificate '{options.TlsCertificate}' and Bridge:TlsKey '{options.TlsKey}' must be a PEM certificate and its key ({exception.Message})");
            }
        }

        if (!double.IsFinite(options.IdleTimeoutSeconds) || options.IdleTimeoutSeconds < 0)
        {
            failures.Add($"Bridge:IdleTimeoutSeconds must be >= 0 (got {options.IdleTimeoutSeconds})");
        }

        if (!double.IsFinite(options.LeaseSeconds) || options.LeaseSeconds < 0.5 || options.LeaseSeconds > 3600)
        {
            failures.Add($"Bridge:LeaseSeconds must be 0.5..3600 (got {options.LeaseSeconds})");
        }

        if (options.MaxPayloadBytes is < 1024 or > 1L << 30)
        {
            failures.Add($"Bridge:MaxPayloadBytes must be 1 KiB..1 GiB (got {options.MaxPayloadBytes})");
        }

        if (options.SiloPort is < 0 or > 65535)
        {
            failures.Add($"Bridge:SiloPort must be 0..65535 (got {options.SiloPort})");
        }

        if (!string.IsNullOrEmpty(options.Cluster))
        {
            var endpoint = options.RedisEndpoint;
            var colon = endpoint.LastIndexOf(':');
            if (!options.Cluster.StartsWith(BridgeHostOptions.RedisScheme, StringComparison.Ordinal) || colon <= 0
                || !int.TryParse(endpoint[(colon + 1)..], out var redisPort) || redisPort is < 1 or > 65535)
            {
                failures.Add($"Bridge:Cluster must be redis://HOST:PORT (got '{options.Cluster}')");
            }

            if (options.TcpPort is null)
            {
                failures.Add("Bridge:Cluster needs Bridge:TcpPort: a cluster host serves TCP, and other hosts reach its silo at Bridge:TcpAddress");
            }

            if (IPAddress.TryParse(options.TcpAddress, out var advertised) && (advertised.Equals(IPAddress.Any) || advertised.Equals(IPAddress.IPv6Any)))
            {
                failures.Add($"Bridge:TcpAddress must be an address other hosts can reach in a cluster, not {options.TcpAddress}");
            }

            if (string.IsNullOrWhiteSpace(options.ClusterId) || options.ClusterId.Length > 100
                || !options.ClusterId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                failures.Add($"Bridge:ClusterId must be 1..100 letters, digits, '-', '_' or '.' (got '{options.ClusterId}')");
            }
        }

        if (options.WarmWorkers is < 0 or > 64)
        {
            failures.Add($"Bridge:WarmWorkers must be 0..64 (got {options.WarmWorkers})");
        }

        if (!double.IsFinite(options.IdleWorkerSeconds) || options.IdleWorkerSeconds < 1 || options.IdleWorkerSeconds > 86_400)
        {
            failures.Add($"Bridge:IdleWorkerSeconds must be 1..86400 (got {options.IdleWorkerSeconds})");
        }

        if (!double.IsFinite(options.WorkerStartSeconds) || options.WorkerStartSeconds <= 0)
        {
            failures.Add($"Bridge:WorkerStartSeconds must be > 0 (got {options.WorkerStartSeconds})");
        }

        if (!string.IsNullOrEmpty(options.PrewarmPythonExecutable) && !File.Exists(options.PrewarmPythonExecutable))
        {
            failures.Add($"Bridge:PrewarmPythonExecutable '{options.PrewarmPythonExecutable}' does not exist");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
