using System.Globalization;
using Bridge.Client;

namespace Bridge.Worker.Hosting;

/// <summary>
/// The worker's command line, validated before anything starts: a bad argument is a bug
/// in whoever launched the worker, so it fails at once with a message and exit code 2.
/// </summary>
internal sealed record WorkerOptions
{
    public const string Usage =
        "usage: Bridge.Worker --host <unix:/path | host:port> --worker-token <token> [--kernel-slots N] [--data-socket /path] [--data-tcp ADDRESS:PORT] " +
        "(a worker for Python work: <python> bridge_worker.py --dotnet-root <dir> <the same options>)";

    public required BridgeAddress Host { get; init; }

    public required string WorkerToken { get; init; }

    /// <summary>Where the worker listens for the owners of direct pools; null: nowhere (host path only).</summary>
    public string? DataSocket { get; init; }

    /// <summary>
    /// Also listen for direct pools' owners on TCP (a cluster host's workers, fed by clients
    /// on other machines); each connection still presents its pool's token. Null: Unix only.
    /// </summary>
    public System.Net.IPEndPoint? DataTcp { get; init; }

    /// <summary>C# kernel chunks that may run at once.</summary>
    public int KernelSlots { get; init; }

    /// <summary>Parses and validates; <paramref name="environment"/> supplies GILBRIDGE_TOKEN.</summary>
    /// <exception cref="WorkerOptionsException">The arguments are invalid.</exception>
    public static WorkerOptions Parse(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(environment);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                throw new WorkerOptionsException($"unexpected argument '{arg}'");
            }

            string name, value;
            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                name = arg[2..equals];
                value = arg[(equals + 1)..];
            }
            else
            {
                name = arg[2..];
                if (i + 1 >= args.Count)
                {
                    throw new WorkerOptionsException($"--{name} needs a value");
                }

                value = args[++i];
            }

            if (name is not ("host" or "worker-token" or "kernel-slots" or "data-socket" or "data-tcp"))
            {
                throw new WorkerOptionsException($"unknown option --{name}");
            }

            if (!values.TryAdd(name, value))
            {
                throw new WorkerOptionsException($"--{name} is given twice");
            }
        }

        var host = Required(values, "host");
        ValidateAddress(host);
        var token = Required(values, "worker-token");

        var slots = Environment.ProcessorCount;
        if (values.TryGetValue("kernel-slots", out var slotText)
            && (!int.TryParse(slotText, NumberStyles.None, CultureInfo.InvariantCulture, out slots) || slots is < 1 or > 4096))
        {
            throw new WorkerOptionsException($"--kernel-slots must be an integer from 1 to 4096 (got '{slotText}')");
        }

        var address = new BridgeAddress(host, host.StartsWith("unix:", StringComparison.Ordinal) ? null : environment("GILBRIDGE_TOKEN"));
        return new WorkerOptions
        {
            Host = address,
            WorkerToken = token,
            KernelSlots = slots,
            DataSocket = DataSocketPath(values.GetValueOrDefault("data-socket")),
            DataTcp = DataTcpEndpoint(values.GetValueOrDefault("data-tcp")),
        };
    }

    private static System.Net.IPEndPoint? DataTcpEndpoint(string? text)
    {
        if (text is null)
        {
            return null;
        }

        return System.Net.IPEndPoint.TryParse(text, out var endpoint) && endpoint.Port > 0
            ? endpoint
            : throw new WorkerOptionsException($"--data-tcp '{text}' must be ADDRESS:PORT (an IP address and a port)");
    }

    private static string? DataSocketPath(string? path) =>
        path is null || Path.IsPathFullyQualified(path)
            ? path
            : throw new WorkerOptionsException($"--data-socket '{path}' must be an absolute path");

    private static string Required(Dictionary<string, string> values, string name) =>
        values.TryGetValue(name, out var value) && !string.IsNullOrWhiteSpace(value)
            ? value
            : throw new WorkerOptionsException($"--{name} is required");

    private static void ValidateAddress(string host)
    {
        if (host.StartsWith("unix:", StringComparison.Ordinal))
        {
            if (!Path.IsPathRooted(host["unix:".Length..]))
            {
                throw new WorkerOptionsException($"--host '{host}': a Unix socket path must be absolute");
            }

            return;
        }

        // host:port, optionally with a scheme (http://host:port) as BridgeAddress accepts.
        var authority = host.Contains("://", StringComparison.Ordinal) ? host[(host.IndexOf("://", StringComparison.Ordinal) + 3)..] : host;
        authority = authority.TrimEnd('/');
        var colon = authority.LastIndexOf(':');
        if (colon <= 0
            || !int.TryParse(authority.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
        {
            throw new WorkerOptionsException($"--host '{host}' is neither unix:/path nor host:port");
        }
    }
}

/// <summary>An invalid command line (exit code 2).</summary>
internal sealed class WorkerOptionsException(string message) : Exception(message);
