namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// One blocked call of a grain method. Every transition (completed by another call,
/// withdrawn by the waiting call itself) happens on the grain's scheduler, so "granted or
/// gave up" is decided exactly once without locks: the timeout and the cancellation token
/// only wake the waiting call, which then decides on the scheduler.
/// </summary>
internal abstract class Waiter<TOutcome> : ISessionWaiter
{
    private readonly TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WaiterState _state;
    private TOutcome? _outcome;
    private Func<BridgeException>? _endedBy;

    protected Waiter(string sessionId) => SessionId = sessionId;

    public string SessionId { get; }

    public bool IsPending => _state == WaiterState.Pending;

    /// <summary>The outcome handed over by <see cref="TryComplete"/>.</summary>
    public TOutcome Outcome => _state == WaiterState.Completed
        ? _outcome!
        : throw new InvalidOperationException("the waiter has no outcome");

    /// <summary>Hands the waiter its outcome; false when it already has one or gave up.</summary>
    public bool TryComplete(TOutcome outcome)
    {
        if (_state != WaiterState.Pending)
        {
            return false;
        }

        _state = WaiterState.Completed;
        _outcome = outcome;
        _wake.TrySetResult();
        return true;
    }

    /// <summary>
    /// The waiter's session ended (its lease lapsed while the call was pending): the call
    /// fails with SessionEnded rather than looking like a timeout, so a client that was
    /// merely stalled renews its session and waits again.
    /// </summary>
    public bool TryEndSession()
    {
        if (_state != WaiterState.Pending)
        {
            return false;
        }

        _state = WaiterState.SessionEnded;
        _wake.TrySetResult();
        return true;
    }

    /// <summary>
    /// The object the call waits on is gone (freed: its last session detached while the
    /// call waited): the call fails with <paramref name="reason"/> at once, rather than
    /// waiting on state nobody holds any more (for ever, without a timeout).
    /// </summary>
    public bool TryEnd(Func<BridgeException> reason)
    {
        if (_state != WaiterState.Pending)
        {
            return false;
        }

        _state = WaiterState.Ended;
        _endedBy = reason;
        _wake.TrySetResult();
        return true;
    }

    /// <summary>Gives up waiting, so that nobody can complete it afterwards.</summary>
    public bool TryWithdraw()
    {
        if (_state != WaiterState.Pending)
        {
            return false;
        }

        _state = WaiterState.Withdrawn;
        _wake.TrySetResult();
        return true;
    }

    /// <summary>
    /// True once completed. False when the timeout elapsed or the token fired first: the
    /// waiter is then still pending, and the caller withdraws it (or waits again) before
    /// its next await, so no grant can slip in between. Throws SessionEnded when the
    /// waiter's session ended meanwhile.
    /// </summary>
    public async Task<bool> WaitAsync(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (_state == WaiterState.Pending && timeout != TimeSpan.Zero)
        {
            try
            {
                await _wake.Task.WaitAsync(WaitTimeouts.ForTask(timeout), cancellationToken);
            }
            catch (TimeoutException)
            {
                // The caller decides what a timeout means.
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Likewise for cancellation; the caller withdraws and rethrows.
            }
        }

        return _state switch
        {
            WaiterState.Completed => true,
            WaiterState.SessionEnded => throw BridgeException.SessionEnded(SessionId),
            WaiterState.Ended => throw _endedBy!(),
            _ => false,
        };
    }

    private enum WaiterState
    {
        Pending,
        Completed,
        Withdrawn,
        SessionEnded,
        Ended,
    }
}

/// <summary>The wait rules shared by every blocking method.</summary>
internal static class WaitTimeouts
{
    // Task.WaitAsync accepts at most this; longer waits are as good as forever.
    private static readonly TimeSpan MaxFinite = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary>The adapter validates timeouts; this guards against other callers.</summary>
    public static void Check(TimeSpan? timeout)
    {
        if (timeout < TimeSpan.Zero)
        {
            throw BridgeException.InvalidArgument($"timeout must not be negative, got {timeout.Value.TotalSeconds} s");
        }
    }

    public static TimeSpan ForTask(TimeSpan? timeout) =>
        timeout is { } t && t <= MaxFinite ? t : Timeout.InfiniteTimeSpan;
}
