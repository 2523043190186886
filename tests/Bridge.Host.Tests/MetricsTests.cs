using System.Diagnostics;
using System.Text.Json;
using Bridge.Client;

namespace Bridge.Host.Tests;

/// <summary>
/// The host's Bridge.Host meter, read the way an operator would: dotnet-counters (the
/// repository's local tool, restored by scripts/setup.sh) attached to a real host process.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MetricsTests : IAsyncLifetime
{
    private const int TestTimeout = 90_000;

    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMilliseconds(TestTimeout));
    private readonly string _output = Path.Combine(Path.GetTempPath(), $"gb-counters-{Guid.NewGuid():N}.json");
    private HostProcess _host = null!;

    public async Task InitializeAsync() => _host = await HostProcess.StartAsync();

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        File.Delete(_output);
        _timeout.Dispose();
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Dotnet_counters_reads_calls_queue_items_sessions_and_queue_depth()
    {
        var token = _timeout.Token;
        var depthQueue = $"metrics-depth-{Guid.NewGuid():N}";
        using var counters = StartCounters(_host.Pid, seconds: 8);
        try
        {
            // dotnet-counters says when its session is up; calls before that are not seen.
            var ready = await counters.StandardOutput.ReadLineAsync(token);
            Assert.True(ready?.Contains("Starting a counter session", StringComparison.Ordinal), ready);

            await using var session = await BridgeSession.OpenAsync(_host.Address, "metrics-tests", token);
            var queue = await session.OpenQueueAsync($"metrics-{Guid.NewGuid():N}", 0, token);
            for (var i = 0; i < 5; i++)
            {
                await queue.PutAsync(i, token);
            }

            for (var i = 0; i < 5; i++)
            {
                Assert.True((await queue.GetAsync<int>(TimeSpan.FromSeconds(5), token)).Found);
            }

            // Items left waiting in a named queue: its depth gauge reports them.
            var waiting = await session.OpenQueueAsync(depthQueue, 0, token);
            for (var i = 0; i < 3; i++)
            {
                await waiting.PutAsync(i, token);
            }

            // Keep the session open across a refresh, so the gauge sees it.
            await Task.Delay(TimeSpan.FromSeconds(2.5), token);
            await counters.WaitForExitAsync(token);
        }
        finally
        {
            if (!counters.HasExited)
            {
                counters.Kill(entireProcessTree: true);
            }
        }

        Assert.Equal(0, counters.ExitCode);
        using var document = JsonDocument.Parse(await File.ReadAllTextAsync(_output, token));
        var events = document.RootElement.GetProperty("Events").EnumerateArray()
            .Select(e => (Name: e.GetProperty("name").GetString()!, Tags: e.GetProperty("tags").GetString()!, Value: e.GetProperty("value").GetDouble()))
            .ToList();
        Assert.Contains(events, e => e.Name.StartsWith("bridge.host.calls", StringComparison.Ordinal)
            && e.Tags.Contains("rpc.method=/bridge.v1.Queues/Put", StringComparison.Ordinal)
            && e.Tags.Contains("rpc.status=OK", StringComparison.Ordinal) && e.Value > 0);
        Assert.Equal(5 + 3, events.Where(e => e.Name.StartsWith("bridge.host.queue.items", StringComparison.Ordinal) && e.Tags == "direction=put").Sum(e => e.Value));
        Assert.Equal(5, events.Where(e => e.Name.StartsWith("bridge.host.queue.items", StringComparison.Ordinal) && e.Tags == "direction=get").Sum(e => e.Value));
        Assert.Contains(events, e => e.Name.StartsWith("bridge.host.sessions", StringComparison.Ordinal) && e.Value >= 1);
        Assert.Contains(events, e => e.Name.StartsWith("bridge.host.call.duration", StringComparison.Ordinal));
        Assert.Contains(events, e => e.Name.StartsWith("bridge.host.queue.depth", StringComparison.Ordinal)
            && e.Tags == $"queue={depthQueue}" && e.Value == 3);
        Assert.Contains(events, e => e.Name.StartsWith("bridge.host.objects", StringComparison.Ordinal) && e.Value >= 1);
    }

    private Process StartCounters(int pid, int seconds)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = HostProcess.RepositoryRoot(),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in new[]
        {
            "tool", "run", "dotnet-counters", "--", "collect", "--process-id", pid.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--counters", "Bridge.Host", "--format", "json", "--refresh-interval", "1",
            "--duration", TimeSpan.FromSeconds(seconds).ToString("c", System.Globalization.CultureInfo.InvariantCulture), "-o", _output,
        })
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start) ?? throw new InvalidOperationException("dotnet-counters did not start");
    }
}
