using System.Net;
using Bridge.Worker.Hosting;

namespace Bridge.Worker.Tests;

/// <summary>The worker's command line: the data socket's TCP endpoint of a cluster host's workers.</summary>
public sealed class WorkerOptionsTests
{
    private static readonly string[] Required = ["--host", "unix:/run/bridge/host.sock", "--worker-token", "T0KEN"];

    [Fact]
    public void Data_tcp_is_an_IP_endpoint_and_optional()
    {
        Assert.Null(WorkerOptions.Parse(Required, _ => null).DataTcp);
        var options = WorkerOptions.Parse([.. Required, "--data-tcp", "127.0.0.1:7123"], _ => null);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 7123), options.DataTcp);
    }

    [Theory]
    [InlineData("localhost:7123")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:70000")]
    public void A_bad_data_tcp_endpoint_is_refused_by_name(string value)
    {
        var error = Assert.Throws<WorkerOptionsException>(() => WorkerOptions.Parse([.. Required, "--data-tcp", value], _ => null));
        Assert.Contains("--data-tcp", error.Message, StringComparison.Ordinal);
    }
}
