using System.Net;
using System.Net.Sockets;
using Bridge.Client;
using Bridge.Contracts.V1;
using Grpc.Core;

namespace Bridge.Host.Tests;

/// <summary>The optional TCP listener serves only callers with the bearer token.</summary>
public sealed class TcpAuthenticationTests
{
    private const string Token = "test-token-0123456789abcdef";

    [Fact(Timeout = 60_000)]
    public async Task Tcp_requires_the_bearer_token_while_the_unix_socket_does_not()
    {
        var port = FreePort();
        await using var host = await HostProcess.StartAsync(tcpPort: port, token: Token);
        var address = $"127.0.0.1:{port}";

        using (var anonymous = new BridgeAddress(address).CreateChannel())
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new Sessions.SessionsClient(anonymous).GetHostInfoAsync(new HostInfoRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }

        using (var wrong = new BridgeAddress(address, "not-the-token-at-all").CreateChannel())
        {
            var error = await Assert.ThrowsAsync<RpcException>(() =>
                new Sessions.SessionsClient(wrong).GetHostInfoAsync(new HostInfoRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var session = await BridgeSession.OpenAsync(new BridgeAddress(address, Token), "tcp", cancel.Token);
        Assert.Equal(host.Pid, session.Host.Pid);
        Assert.Equal(host.Pid, (await host.InfoAsync(cancel.Token)).Pid);
    }

    [Fact(Timeout = 60_000)]
    public async Task Tcp_without_a_token_refuses_to_start()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => HostProcess.StartAsync(tcpPort: FreePort(), token: ""));
        Assert.Contains("exited during start-up with code 2", error.Message, StringComparison.Ordinal);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
