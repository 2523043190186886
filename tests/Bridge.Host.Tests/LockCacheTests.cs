using System.Diagnostics;
using Bridge.Client;
using Bridge.Contracts.V1;
using Grpc.Core;

namespace Bridge.Host.Tests;

/// <summary>
/// Lock caching over the wire, against a real host process: the Watch/Surrender contract
/// as any opting-in gRPC client sees it, and a plain client (no cacheable flag) sharing a
/// lock that a real Python process holds cached.
/// </summary>
public sealed class LockCacheTests(HostFixture fixture) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 90_000;

    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromSeconds(80));

    private CancellationToken Token => _testTimeout.Token;

    [Fact(Timeout = TestTimeout)]
    public async Task A_cached_grant_is_recalled_over_Watch_and_surrendered_to_the_waiter()
    {
        await using var cacher = await BridgeSession.OpenAsync(fixture.Host.Address, "cacher", Token);
        await using var other = await BridgeSession.OpenAsync(fixture.Host.Address, "other", Token);
        var info = await cacher.Synchronization.CreateLockAsync(
            new CreateLockRequest { SessionId = cacher.SessionId, Kind = ObjectKind.Lock }, cancellationToken: Token);
        using var watch = cacher.Sessions.Watch(new WatchRequest { SessionId = cacher.SessionId }, cancellationToken: Token);
        Assert.True(await watch.ResponseStream.MoveNext(Token));
        Assert.Equal(SessionEvent.EventOneofCase.Started, watch.ResponseStream.Current.EventCase);

        var grant = await cacher.Synchronization.AcquireAsync(
            new AcquireRequest { Target = cacher.Ref(info.Name), Owner = "t1", Cacheable = true }, cancellationToken: Token);
        Assert.True(grant.Acquired);
        Assert.NotEqual(0, grant.CacheToken);

        // Others see it held and cached; a plain waiter triggers exactly one recall.
        var seen = await other.Synchronization.GetLockStateAsync(new LockStateRequest { Target = other.Ref(info.Name), Owner = "x" }, cancellationToken: Token);
        Assert.Equal((0L, false, true), (seen.Value, seen.OwnedByCaller, seen.Cached));
        var waiting = other.Synchronization.AcquireAsync(
            new AcquireRequest { Target = other.Ref(info.Name), Owner = "w", Wait = new WaitPolicy { Block = true, TimeoutSeconds = 60 } },
            cancellationToken: Token).ResponseAsync;

        Assert.True(await watch.ResponseStream.MoveNext(Token));
        var recall = watch.ResponseStream.Current.LockRecall;
        Assert.Equal((info.Name, grant.CacheToken), (recall.Name, recall.CacheToken));
        Assert.False(waiting.IsCompleted);

        var surrendered = await cacher.Synchronization.SurrenderLockAsync(
            new SurrenderLockRequest { Target = cacher.Ref(info.Name), CacheToken = grant.CacheToken, Held = false }, cancellationToken: Token);
        Assert.True(surrendered.Applied);
        var handedOver = await waiting;
        Assert.True(handedOver.Acquired);
        Assert.Equal(0, handedOver.CacheToken); // the waiter did not opt in

        // A repeated surrender of the old grant changes nothing.
        var again = await cacher.Synchronization.SurrenderLockAsync(
            new SurrenderLockRequest { Target = cacher.Ref(info.Name), CacheToken = grant.CacheToken }, cancellationToken: Token);
        Assert.False(again.Applied);
        var state = await other.Synchronization.GetLockStateAsync(new LockStateRequest { Target = other.Ref(info.Name), Owner = "w" }, cancellationToken: Token);
        Assert.Equal((0L, true, false), (state.Value, state.OwnedByCaller, state.Cached));
    }

    [Fact(Timeout = TestTimeout)]
    public async Task Watch_of_an_unknown_session_is_not_found()
    {
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "watcher", Token);
        using var watch = session.Sessions.Watch(new WatchRequest { SessionId = Guid.NewGuid().ToString("N") }, cancellationToken: Token);
        var error = await Assert.ThrowsAsync<RpcException>(() => watch.ResponseStream.MoveNext(Token));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Fact(Timeout = TestTimeout)]
    public async Task A_plain_client_shares_a_lock_that_a_python_process_holds_cached()
    {
        var name = $"cache-interop-{Guid.NewGuid():N}";
        await using var session = await BridgeSession.OpenAsync(fixture.Host.Address, "plain", Token);
        await using var python = PythonChild.Start(
            fixture.Host.Address.Value,
            $$"""
            import sys
            import gilbridge.multiprocessing as mp
            lock = mp.Lock(name="{{name}}")
            lock.acquire()
            lock.release()
            print("cached", lock.acquire(False), flush=True)  # locally, from the cache
            lock.release()
            sys.stdin.readline()
            print("nonblocking", lock.acquire(False), flush=True)
            sys.stdin.readline()
            print("acquired", lock.acquire(timeout=60), flush=True)
            lock.release()
            """);
        Assert.Equal("cached True", await python.ReadLineAsync(Token));

        var state = await session.Synchronization.GetLockStateAsync(new LockStateRequest { Target = session.Ref(name), Owner = "cs" }, cancellationToken: Token);
        Assert.Equal((0L, true), (state.Value, state.Cached));

        // No cacheable flag: a plain grant, after the host recalled Python's cache.
        var reply = await session.Synchronization.AcquireAsync(
            new AcquireRequest { Target = session.Ref(name), Owner = "cs", Wait = new WaitPolicy { Block = true, TimeoutSeconds = 60 } },
            cancellationToken: Token);
        Assert.True(reply.Acquired);
        Assert.Equal(0, reply.CacheToken);
        state = await session.Synchronization.GetLockStateAsync(new LockStateRequest { Target = session.Ref(name), Owner = "cs" }, cancellationToken: Token);
        Assert.Equal((0L, true, false), (state.Value, state.OwnedByCaller, state.Cached));

        await python.WriteLineAsync("go");
        Assert.Equal("nonblocking False", await python.ReadLineAsync(Token));
        await python.WriteLineAsync("go");
        await session.Synchronization.ReleaseAsync(new ReleaseRequest { Target = session.Ref(name), Owner = "cs" }, cancellationToken: Token);
        Assert.Equal("acquired True", await python.ReadLineAsync(Token));
        Assert.Equal(0, await python.WaitForExitAsync(Token));
    }

    public void Dispose() => _testTimeout.Dispose();

    /// <summary>A Python child using gilbridge, killed by its pid if still running at the end.</summary>
    private sealed class PythonChild : IAsyncDisposable
    {
        private readonly Process _process;

        private PythonChild(Process process) => _process = process;

        public static PythonChild Start(string address, string script)
        {
            var python = Environment.GetEnvironmentVariable("GILBRIDGE_PYTHON");
            if (string.IsNullOrEmpty(python))
            {
                python = Path.Combine(HostProcess.RepositoryRoot(), ".venv", "bin", "python");
            }

            var start = new ProcessStartInfo(python)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(script);
            start.Environment["GILBRIDGE_ADDRESS"] = address;
            return new PythonChild(Process.Start(start) ?? throw new InvalidOperationException("could not start " + python));
        }

        public async Task<string> ReadLineAsync(CancellationToken cancellationToken)
        {
            var line = await _process.StandardOutput.ReadLineAsync(cancellationToken);
            if (line is null)
            {
                await _process.WaitForExitAsync(cancellationToken);
                Assert.Fail($"python exited {_process.ExitCode} early: {await _process.StandardError.ReadToEndAsync(cancellationToken)}");
            }

            return line.Trim();
        }

        public async Task WriteLineAsync(string line)
        {
            await _process.StandardInput.WriteLineAsync(line);
            await _process.StandardInput.FlushAsync();
        }

        public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
        {
            await _process.WaitForExitAsync(cancellationToken);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }
    }
}
