using System.Collections.Concurrent;

namespace Bridge.Core.Sessions;

/// <summary>
/// The live sessions of this silo, for status and the host's idle shutdown. A DI
/// singleton that session grains report to.
/// </summary>
public sealed class SessionTracker
{
    private readonly ConcurrentDictionary<string, TrackedSession> _sessions = new();
    private long _lastChangeTicks = DateTimeOffset.UtcNow.UtcTicks;

    /// <summary>Raised after a session ended, so host-local resources it owned (pools) are released.</summary>
    public event Action<string>? SessionEnded;

    public int ActiveCount => _sessions.Count;

    public bool IsActive(string sessionId) => _sessions.ContainsKey(sessionId);

    /// <summary>When a session last started or ended (the idle clock starts there).</summary>
    public DateTimeOffset LastChange => new(Interlocked.Read(ref _lastChangeTicks), TimeSpan.Zero);

    /// <summary>The live sessions now, oldest first.</summary>
    public IReadOnlyList<SessionRecord> Sessions() =>
        [.. _sessions.Select(pair => pair.Value.Record(pair.Key)).OrderBy(session => session.StartedAt)];

    public void Started(string sessionId, SessionStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        _sessions[sessionId] = new TrackedSession(start, DateTimeOffset.UtcNow);
        Touch();
    }

    /// <summary>The session now references <paramref name="objects"/> objects.</summary>
    public void ObjectsChanged(string sessionId, int objects)
    {
        if (_sessions.TryGetValue(sessionId, out var session))
        {
            session.Objects = objects;
        }
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

    private sealed class TrackedSession(SessionStart start, DateTimeOffset startedAt)
    {
        private int _objects;

        public int Objects
        {
            get => Volatile.Read(ref _objects);
            set => Volatile.Write(ref _objects, value);
        }

        public SessionRecord Record(string id) => new(id, start.ClientName, start.Pid, start.Language, startedAt, Objects);
    }
}

/// <summary>One live session as <see cref="SessionTracker.Sessions"/> lists it.</summary>
/// <param name="Objects">Objects the session references (attached to, not yet detached).</param>
public sealed record SessionRecord(string Id, string ClientName, int Pid, string Language, DateTimeOffset StartedAt, int Objects);
