using System.Diagnostics;

namespace Bridge.Core.Tests;

/// <summary>Sessions, unique names and error assertions for the grain tests.</summary>
public abstract class GrainTestBase(ClusterFixture fixture)
{
    /// <summary>Long enough that no test session lapses by accident.</summary>
    protected static readonly TimeSpan LongLease = TimeSpan.FromMinutes(5);

    /// <summary>A wait that must end by itself well before this is a failure, not a hang.</summary>
    protected static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>How long to let a call that should block prove that it blocks.</summary>
    protected static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(150);

    protected ClusterFixture Fixture { get; } = fixture;

    protected IClusterClient Client => Fixture.Client;

    protected static string NewName(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    protected async Task<string> NewSession(TimeSpan? lease = null)
    {
        var id = Guid.NewGuid().ToString("N");
        await Session(id).Start(new SessionStart("core-tests", Environment.ProcessId, "dotnet", lease ?? LongLease));
        return id;
    }

    protected ISessionGrain Session(string id) => Client.GetGrain<ISessionGrain>(id);

    protected ILockGrain Lock(string name) => Client.GetGrain<ILockGrain>(name);

    protected IEventGrain Event(string name) => Client.GetGrain<IEventGrain>(name);

    protected IConditionGrain Condition(string name) => Client.GetGrain<IConditionGrain>(name);

    protected IBarrierGrain Barrier(string name) => Client.GetGrain<IBarrierGrain>(name);

    protected IQueueGrain Queue(string name) => Client.GetGrain<IQueueGrain>(name);

    protected IValueGrain Value(string name) => Client.GetGrain<IValueGrain>(name);

    protected static async Task<BridgeException> AssertBridgeError(
        Func<Task> call,
        BridgeErrorCode code,
        string pythonException,
        string? messageContains = null)
    {
        var error = await Assert.ThrowsAsync<BridgeException>(call);
        Assert.Equal(code, error.Code);
        Assert.Equal(pythonException, error.PythonException);
        if (messageContains is not null)
        {
            Assert.Contains(messageContains, error.Message, StringComparison.Ordinal);
        }

        return error;
    }

    /// <summary>Asserts the task is still running after <see cref="Settle"/>.</summary>
    protected static async Task AssertBlocked(Task task)
    {
        await Task.Delay(Settle);
        Assert.False(task.IsCompleted, "the call should still be waiting");
    }

    /// <summary>Awaits a task that must complete within <see cref="Patience"/>.</summary>
    protected static async Task<T> Soon<T>(Task<T> task) => await task.WaitAsync(Patience);

    protected static async Task Soon(Task task) => await task.WaitAsync(Patience);

    /// <summary>
    /// The blocked call of a session that ended fails with SessionEnded (NotFound), so a
    /// stalled client learns its session is gone instead of seeing a timeout.
    /// </summary>
    protected static async Task AssertSessionEnded(Task task)
    {
        var error = await Assert.ThrowsAsync<BridgeException>(() => Soon(task));
        Assert.Equal(BridgeErrorCode.NotFound, error.Code);
        Assert.Equal("ConnectionResetError", error.PythonException);
    }

    /// <summary>Polls until the condition holds, failing after <see cref="Patience"/>.</summary>
    protected static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > Patience)
            {
                Assert.Fail($"timed out waiting until {what}");
            }

            await Task.Delay(50);
        }
    }
}
