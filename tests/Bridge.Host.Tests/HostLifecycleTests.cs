using System.Diagnostics;
using Bridge.Contracts.V1;
using Grpc.Reflection.V1Alpha;

namespace Bridge.Host.Tests;

/// <summary>Start-up validation, discovery through server reflection, graceful SIGTERM.</summary>
public sealed class HostLifecycleTests
{
    [Fact(Timeout = 60_000)]
    public async Task Reflection_lists_every_bridge_service()
    {
        await using var host = await HostProcess.StartAsync();
        using var channel = host.Address.CreateChannel();
        using var call = new ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToHashSet();
        Assert.Superset(
            new HashSet<string> { "bridge.v1.Sessions", "bridge.v1.Queues", "bridge.v1.Synchronization", "bridge.v1.SharedValues", "grpc.health.v1.Health" },
            names);
    }

    [Fact(Timeout = 60_000)]
    public async Task Sigterm_stops_the_host_gracefully_and_removes_its_socket()
    {
        var host = await HostProcess.StartAsync();
        Assert.Equal(0, await host.TerminateAsync(TimeSpan.FromSeconds(20)));
        Assert.False(File.Exists(host.SocketPath));
        await host.DisposeAsync();
    }

    [Fact(Timeout = 60_000)]
    public async Task Invalid_options_stop_the_start_with_a_message()
    {
        var start = new ProcessStartInfo(HostProcess.HostExecutable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("--Bridge:SocketPath=relative/host.sock");
        start.ArgumentList.Add("--Bridge:LeaseSeconds=-1");
        start.ArgumentList.Add("--Bridge:PrewarmPythonExecutable=/nonexistent/python3");
        start.ArgumentList.Add("--Bridge:IdleWorkerSeconds=0");
        start.ArgumentList.Add("--Bridge:Cluster=127.0.0.1:6379");
        start.ArgumentList.Add("--Bridge:ClusterId=no spaces");
        using var process = Process.Start(start)!;
        try
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(limit.Token);
            Assert.Equal(2, process.ExitCode);
            var text = await output + await errors;
            Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:SocketPath must be an absolute path", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:LeaseSeconds must be", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:IdleWorkerSeconds must be 1..86400 (got 0)", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:PrewarmPythonExecutable '/nonexistent/python3' does not exist", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:Cluster must be redis://HOST:PORT (got '127.0.0.1:6379')", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:Cluster needs Bridge:TcpPort", text, StringComparison.Ordinal);
            Assert.Contains("Bridge:ClusterId must be", text, StringComparison.Ordinal);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_second_host_on_the_same_socket_refuses_to_start()
    {
        await using var first = await HostProcess.StartAsync();
        var start = new ProcessStartInfo(HostProcess.HostExecutable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add($"--Bridge:SocketPath={first.SocketPath}");
        using var second = Process.Start(start)!;
        try
        {
            var errors = second.StandardError.ReadToEndAsync();
            var output = second.StandardOutput.ReadToEndAsync();
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await second.WaitForExitAsync(limit.Token);
            Assert.Equal(2, second.ExitCode);
            Assert.Contains("already answers", await output + await errors, StringComparison.Ordinal);
            Assert.Equal(first.Pid, (await first.InfoAsync(limit.Token)).Pid);
        }
        finally
        {
            if (!second.HasExited)
            {
                second.Kill(entireProcessTree: true);
            }
        }
    }
}
