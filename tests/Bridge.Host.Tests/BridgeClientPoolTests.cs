using Bridge.Client;

namespace Bridge.Host.Tests;

public sealed partial class BridgeClientTests
{
    [Fact(Timeout = 60_000)]
    public async Task A_kernel_pool_applies_maps_and_reports_kernel_errors()
    {
        await using var session = await OpenAsync();
        await using var pool = await session.PoolAsync(2, new BridgePoolOptions { Name = "client-kernels" }, Token);
        Assert.Equal(2, pool.WorkerPids.Count);

        var count = BridgeFunction.Kernel("Bridge.Kernels.Primes.Count");
        Assert.Equal(25, await pool.ApplyAsync<long>(count, [0L, 100L], Token));
        var ranges = Enumerable.Range(0, 10).Select(i => new object?[] { i * 10_000L, (i + 1) * 10_000L });
        Assert.Equal(9_592, (await pool.StarMapAsync<long>(count, ranges, Token)).Sum());
        var twice = BridgeFunction.CSharp("public static long Twice(long x) => 2 * x;");
        Assert.Equal([0L, 2L, 4L, 6L, 8L], await pool.MapAsync<long, long>(twice, [0, 1, 2, 3, 4], Token));

        var error = await Assert.ThrowsAsync<PoolTaskException>(() => pool.ApplyAsync<long>(BridgeFunction.Kernel("Bridge.Kernels.Math.SumOfSquares"), [long.MaxValue], Token));
        Assert.Equal("System.OverflowException", error.RemoteType);
        Assert.NotEmpty(error.RemoteTrace);
        await pool.CloseAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Python_functions_run_by_module_and_name_and_a_terminated_pool_breaks_its_tasks()
    {
        await using var session = await OpenAsync();
        var modules = Directory.CreateTempSubdirectory("bridge-client-tasks-");
        await File.WriteAllTextAsync(
            Path.Combine(modules.FullName, "client_tasks.py"),
            "def pair(x):\n    return (x, 3 * x)\n\nclass Scale:\n    @staticmethod\n    def twice(x):\n        return 2 * x\n",
            Token);
        var python = new BridgePythonEnvironment { Executable = PythonExecutable(), SysPath = [modules.FullName] };
        var pool = await session.PoolAsync(1, new BridgePoolOptions { Python = python }, Token);
        Assert.Equal([1L, 120L, 3_628_800L], await pool.MapAsync<int, long>(BridgeFunction.Python("math:factorial"), [0, 5, 10], Token));
        // A function of a module on SysPath; its tuples read as arrays; a dotted name resolves.
        Assert.Equal([[1, 3], [2, 6]], await pool.MapAsync<int, int[]>(BridgeFunction.Python("client_tasks:pair"), [1, 2], Token));
        Assert.Equal(14, await pool.ApplyAsync<int>(BridgeFunction.Python("client_tasks:Scale.twice"), [7], Token));
        Assert.Equal(pool.WorkerPids[0], await pool.ApplyAsync<int>(BridgeFunction.Python("os:getpid"), [], Token));
        var error = await Assert.ThrowsAsync<PoolTaskException>(() => pool.ApplyAsync<double>(BridgeFunction.Python("math:sqrt"), [-1.0], Token));
        Assert.Equal("ValueError", error.RemoteType);
        Assert.Throws<ArgumentException>(() => BridgeFunction.Python("math.sqrt"));

        var sleeping = pool.ApplyAsync<double>(BridgeFunction.Python("time:sleep"), [30.0], Token);
        await Task.Delay(300, Token);
        await pool.TerminateAsync(Token);
        await Assert.ThrowsAsync<BrokenPoolException>(() => sleeping);
        await pool.DisposeAsync();
        modules.Delete(recursive: true);
    }

    private static string PythonExecutable()
    {
        var python = Environment.GetEnvironmentVariable("GILBRIDGE_PYTHON");
        return string.IsNullOrEmpty(python) ? Path.Combine(HostProcess.RepositoryRoot(), ".venv", "bin", "python") : python;
    }
}
