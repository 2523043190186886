using System.Net.Sockets;
using System.Runtime.InteropServices;
using Grpc.Core;
using Grpc.Net.Client;

namespace Bridge.Client;

/// <summary>
/// Where a host listens, in the form the Python client reads from GILBRIDGE_ADDRESS:
/// "unix:/abs/path.sock" or "host:port" (TCP, which needs the host's bearer token).
/// </summary>
/// <param name="Value">"unix:/abs/path.sock", or "host:port" for TCP.</param>
/// <param name="Token">The host's bearer token (TCP only; a Unix socket is private to its user).</param>
public sealed partial record BridgeAddress(string Value, string? Token = null)
{
    /// <summary>Whether <see cref="Value"/> is a Unix socket ("unix:/path").</summary>
    public bool IsUnixSocket => Value.StartsWith("unix:", StringComparison.Ordinal);

    /// <summary>
    /// What Python's gilbridge connects to: <see cref="FromEnvironment"/> when
    /// GILBRIDGE_ADDRESS is set, else the per-user default socket
    /// (<c>$GILBRIDGE_RUNTIME_DIR/host.sock</c>, <c>$XDG_RUNTIME_DIR/gilbridge/host.sock</c>,
    /// else <c>/tmp/gilbridge-&lt;uid&gt;/host.sock</c>). Unlike the Python client, the .NET
    /// client never starts a host: start one with <c>gilbridge host start</c>.
    /// </summary>
    public static BridgeAddress Default => FromEnvironment() ?? new BridgeAddress("unix:" + Path.Combine(DefaultRuntimeDirectory(), "host.sock"));

    /// <summary>GILBRIDGE_ADDRESS and GILBRIDGE_TOKEN, or null when the address is not set.</summary>
    public static BridgeAddress? FromEnvironment()
    {
        var value = Environment.GetEnvironmentVariable("GILBRIDGE_ADDRESS");
        return string.IsNullOrEmpty(value) ? null : new BridgeAddress(value, Environment.GetEnvironmentVariable("GILBRIDGE_TOKEN"));
    }

    /// <summary>A gRPC channel to the host (Unix socket or TCP, with the token when there is one).</summary>
    public GrpcChannel CreateChannel()
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
        string target;
        if (IsUnixSocket)
        {
            var endpoint = new UnixDomainSocketEndPoint(Value["unix:".Length..]);
            handler.ConnectCallback = async (_, cancellationToken) =>
                new NetworkStream(await ConnectUnixAsync(endpoint, cancellationToken).ConfigureAwait(false), ownsSocket: true);
            target = "http://localhost";
        }
        else
        {
            target = Value.Contains("://", StringComparison.Ordinal) ? Value : "http://" + Value;
        }

        var options = new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
        };
        if (!string.IsNullOrEmpty(Token))
        {
            var credentials = CallCredentials.FromInterceptor((_, metadata) =>
            {
                metadata.Add("authorization", "Bearer " + Token);
                return Task.CompletedTask;
            });
            options.Credentials = ChannelCredentials.Create(ChannelCredentials.Insecure, credentials);
            options.UnsafeUseInsecureChannelCallCredentials = true;
        }

        return GrpcChannel.ForAddress(target, options);
    }

    /// <summary>
    /// Waits until a Unix-socket host accepts connections (a process started together with
    /// its host connects as soon as the host listens); returns at once for TCP. Polls every
    /// 10 ms; TimeoutException after <paramref name="timeout"/>.
    /// </summary>
    public async Task WaitForListenerAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!IsUnixSocket)
        {
            return;
        }

        var endpoint = new UnixDomainSocketEndPoint(Value["unix:".Length..]);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        while (true)
        {
            try
            {
                using var socket = await ConnectUnixAsync(endpoint, deadline.Token).ConfigureAwait(false);
                return;
            }
            catch (SocketException)
            {
                // Not listening yet (no socket file, or refused).
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"no host listened at {Value} within {timeout.TotalSeconds:0.#} s");
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(10), deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"no host listened at {Value} within {timeout.TotalSeconds:0.#} s");
            }
        }
    }

    /// <summary>A socket connected to <paramref name="endpoint"/>; disposed when the connect fails.</summary>
    private static async Task<Socket> ConnectUnixAsync(UnixDomainSocketEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static string DefaultRuntimeDirectory()
    {
        var configured = Environment.GetEnvironmentVariable("GILBRIDGE_RUNTIME_DIR");
        if (!string.IsNullOrEmpty(configured))
        {
            return Path.GetFullPath(configured);
        }

        var xdg = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return !string.IsNullOrEmpty(xdg)
            ? Path.Combine(xdg, "gilbridge")
            : "/tmp/gilbridge-" + GetUid().ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    [LibraryImport("libc", EntryPoint = "getuid")]
    private static partial uint GetUid();
}
