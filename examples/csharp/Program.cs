// Shares a named queue and a lock with a Python script, then runs a C# kernel and a Python
// function on Bridge workers. Arguments: the jobs queue, the results queue, the lock and
// the Python interpreter of the workers (one that imports gilbridge).
using Bridge.Client;
using MessagePack;

using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
var ct = timeout.Token;
await using var session = await BridgeSession.OpenAsync(ct);  // GILBRIDGE_ADDRESS, else the default socket
var jobs = await session.QueueAsync<Job?>(args[0], cancellationToken: ct);
var results = await session.QueueAsync<object>(args[1], cancellationToken: ct);
var guard = await session.LockAsync(args[2], ct);

await using (await guard.AcquireAsync(TimeSpan.FromSeconds(30), ct))
{
    await results.PutAsync("locked", ct);
    while (await jobs.GetAsync(TimeSpan.FromSeconds(60), ct) is { } job)  // None ends the jobs
    {
        await results.PutAsync(new Answer(job.N, job.N * job.N, "csharp"), ct);
    }
}

await results.PutAsync("released", ct);

var python = new BridgePythonEnvironment { Executable = args[3] };
await using (var pool = await session.PoolAsync(2, new BridgePoolOptions { Python = python }, ct))
{
    var primes = await pool.ApplyAsync<long>(BridgeFunction.Kernel("Bridge.Kernels.Primes.Count"), [0L, 100_000L], ct);
    var factorials = await pool.MapAsync<int, long>(BridgeFunction.Python("math:factorial"), [5, 10], ct);
    await results.PutAsync(new Dictionary<string, object> { ["primes"] = primes, ["factorials"] = factorials }, ct);
}

[MessagePackObject]
public sealed record Job([property: Key("n")] int N);

[MessagePackObject]
public sealed record Answer([property: Key("n")] int N, [property: Key("square")] int Square, [property: Key("from")] string From);
