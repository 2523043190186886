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

    public int ActiveCount => _sessions.Count;

    /// <summary>When a session last started or ended (the idle clock starts there).</summary>
    public DateTimeOffset LastChange => new(Interlocked.Read(ref _lastChangeTicks), TimeSpan.Zero);

    public void Started(string sessionId)
    {
        _sessions[sessionId] = DateTimeOffset.UtcNow;
        Touch();
    }

    public void Ended(string sessionId)
    {
        _sessions.TryRemove(sessionId, out _);
        Touch();
    }

    private void Touch() => Interlocked.Exchange(ref _lastChangeTicks, DateTimeOffset.UtcNow.UtcTicks);
}
