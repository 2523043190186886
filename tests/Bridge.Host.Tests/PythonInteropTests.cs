using System.Diagnostics;
using Bridge.Client;

namespace Bridge.Host.Tests;

/// <summary>
/// The same named queue from C# (the generated client) and from a Python script using
/// gilbridge: MessagePack payloads cross languages both ways.
/// </summary>
public sealed class PythonInteropTests(HostFixture fixture) : IClassFixture<HostFixture>
{
    [Fact(Timeout = 90_000)]
    public async Task Csharp_puts_and_python_gets_from_a_named_queue()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(80));
        var name = $"to-python-{Guid.NewGuid():N}";
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "interop", cancel.Token);
        var queue = await session.OpenQueueAsync(name, 0, cancel.Token);
        await queue.PutAsync("hello from C#", cancel.Token);
        await queue.PutAsync(new[] { 1, 2, 3 }, cancel.Token);
        await queue.PutAsync(new Dictionary<string, double> { ["pi"] = 3.5 }, cancel.Token);

        var output = await RunPythonAsync(
            $$"""
            import gilbridge.multiprocessing as mp
            q = mp.Queue(name="{{name}}", create=False)
            print(repr(q.get(timeout=10)))
            print(repr(q.get(timeout=10)))
            print(repr(q.get(timeout=10)))
            """,
            cancel.Token);
        Assert.Equal(["'hello from C#'", "[1, 2, 3]", "{'pi': 3.5}"], output);
    }

    [Fact(Timeout = 90_000)]
    public async Task Python_puts_and_csharp_gets_from_a_named_queue()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(80));
        var name = $"from-python-{Guid.NewGuid():N}";
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "interop", cancel.Token);
        var queue = await session.OpenQueueAsync(name, 0, cancel.Token);

        await RunPythonAsync(
            $$"""
            import gilbridge.multiprocessing as mp
            q = mp.Queue(name="{{name}}")
            q.put("hello from Python")
            q.put([10, 20])
            q.put(2**40)
            q.close()
            q.join_thread()
            print("sent")
            """,
            cancel.Token);

        Assert.Equal((true, "hello from Python"), await queue.GetAsync<string>(TimeSpan.FromSeconds(10), cancel.Token));
        var (found, list) = await queue.GetAsync<int[]>(TimeSpan.FromSeconds(10), cancel.Token);
        Assert.True(found);
        Assert.Equal([10, 20], list!);
        Assert.Equal((true, 1L << 40), await queue.GetAsync<long>(TimeSpan.FromSeconds(10), cancel.Token));
    }

    private async Task<string[]> RunPythonAsync(string script, CancellationToken cancellationToken)
    {
        var python = Environment.GetEnvironmentVariable("GILBRIDGE_PYTHON");
        if (string.IsNullOrEmpty(python))
        {
            python = Path.Combine(HostProcess.RepositoryRoot(), ".venv", "bin", "python");
        }

        var start = new ProcessStartInfo(python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        start.Environment["GILBRIDGE_ADDRESS"] = fixture.Host.Address.Value;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start " + python);
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            Assert.True(process.ExitCode == 0, $"python exited {process.ExitCode}: {await stderr}");
            return (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
