using System.Collections.Concurrent;

namespace Bridge.Core.Sessions;

/// <summary>
/// The live sessions of this silo, for status and the host's idle shutdown. A DI
/// singleton that session grains report to.
/// </summary>
public sealed class SessionTracker
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new();
    private long _lastChangeTicks = DateTimeOffset.UtcNow.UtcTicks;

    /// <summary>Raised after a session ended, so host-local resources it owned (pools) are released.</summary>
    public event Action<string>? SessionEnded;

    public int ActiveCount => _sessions.Count;

    public bool IsActive(string sessionId) => _sessions.ContainsKey(sessionId);

    /// <summary>When a session last started or ended (the idle clock starts there).</summary>
    public DateTimeOffset LastChange => new(Interlocked.Read(ref _lastChangeTicks), TimeSpan.Zero);

    public void Started(string sessionId)
    {
        _sessions[sessionId] = DateTimeOffset.UtcNow;
        Touch();
    }

    public void Ended(string sessionId)
    {
        if (_sessions.TryRemove(sessionId, out _))
        {
            Touch();
            SessionEnded?.Invoke(sessionId);
        }
    }

    private void Touch() => Interlocked.Exchange(ref _lastChangeTicks, DateTimeOffset.UtcNow.UtcTicks);
}
