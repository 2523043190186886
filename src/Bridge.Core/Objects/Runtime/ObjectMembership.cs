using Bridge.Core.Sessions;

namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// The life of a named object, shared by every object grain: created or not, and the set
/// of sessions referencing it. Opening and first use attach the calling session (the
/// session grain records the object so it can tell it when the session ends); when the
/// last session leaves, the object is freed and later calls are NotFound.
/// </summary>
internal sealed class ObjectMembership
{
    private readonly IGrainFactory _grains;
    private readonly string _noun;
    private readonly Action _onCreated;
    private readonly Action _onFreed;
    private readonly HashSet<string> _sessions = new(StringComparer.Ordinal);

    // Sessions whose Attached call is in flight, and those of them that ended meanwhile:
    // SessionEnded may overtake the reply to Attached, and must still win.
    private readonly Dictionary<string, int> _attaching = new(StringComparer.Ordinal);
    private readonly HashSet<string> _endedWhileAttaching = new(StringComparer.Ordinal);

    /// <param name="noun">How errors name the family, e.g. "Lock/RLock/Semaphore".</param>
    /// <param name="onCreated">Runs when an Open creates the object.</param>
    /// <param name="onFreed">Runs when the last session left: reset the state.</param>
    public ObjectMembership(IGrainFactory grains, ObjectAddress address, string noun, Action onCreated, Action onFreed)
    {
        _grains = grains;
        Address = address;
        _noun = noun;
        _onCreated = onCreated;
        _onFreed = onFreed;
    }

    public ObjectAddress Address { get; }

    public bool IsCreated { get; private set; }

    /// <summary>Some Open or first call is waiting for its session grain.</summary>
    public bool IsAttaching => _attaching.Count > 0;

    public bool IsMember(string sessionId) => _sessions.Contains(sessionId);

    /// <summary>
    /// Applies <paramref name="mode"/>: <paramref name="mismatch"/> describes how the
    /// existing object differs from the request (null: it matches); <paramref name="create"/>
    /// initialises the state. Attaches the session either way.
    /// </summary>
    public async Task Open(string sessionId, OpenMode mode, Func<string?> mismatch, Action create)
    {
        // The host also generates '~' names for anonymous objects and creates them
        // through here, so only the attach rules apply; it validates user names itself.
        ObjectNames.Validate(Address.Name, creating: false);
        CheckSessionId(sessionId);
        if (!Enum.IsDefined(mode))
        {
            throw BridgeException.InvalidArgument($"unknown open mode {(int)mode}");
        }

        CheckOpen(mode, mismatch);
        if (!_sessions.Contains(sessionId))
        {
            await AttachSession(sessionId);

            // Another call may have created or freed the object while this one waited.
            CheckOpen(mode, mismatch);
        }

        if (!IsCreated)
        {
            create();
            IsCreated = true;
            _onCreated();
        }

        _sessions.Add(sessionId);
    }

    /// <summary>
    /// NotFound unless the object exists; attaches the session on its first call. Completes
    /// synchronously for a session already attached (the hot path).
    /// </summary>
    public ValueTask EnsureMember(string sessionId)
    {
        if (!IsCreated)
        {
            throw NotFound();
        }

        return _sessions.Contains(sessionId) ? ValueTask.CompletedTask : new ValueTask(Join(sessionId));
    }

    /// <summary>
    /// Drops the session's reference; <paramref name="ended"/> also makes an attach of that
    /// session still in flight fail. True when that freed the object.
    /// </summary>
    public bool Leave(string sessionId, bool ended)
    {
        if (ended && _attaching.ContainsKey(sessionId))
        {
            _endedWhileAttaching.Add(sessionId);
        }

        if (!_sessions.Remove(sessionId) || _sessions.Count > 0 || !IsCreated)
        {
            return false;
        }

        IsCreated = false;
        _onFreed();
        return true;
    }

    public BridgeException NotFound() =>
        BridgeException.NotFound($"no {_noun} named '{Address.Name}' (never created, or freed after its last user detached)");

    private void CheckOpen(OpenMode mode, Func<string?> mismatch)
    {
        switch (mode)
        {
            case OpenMode.Create when IsCreated:
                throw BridgeException.AlreadyExists($"a {_noun} named '{Address.Name}' already exists");
            case OpenMode.Attach when !IsCreated:
                throw NotFound();
            case OpenMode.CreateOrAttach when IsCreated && mismatch() is { } difference:
                throw BridgeException.AlreadyExists($"'{Address.Name}' already exists as {difference}");
        }
    }

    private async Task Join(string sessionId)
    {
        CheckSessionId(sessionId);
        await AttachSession(sessionId);
        if (!IsCreated)
        {
            throw NotFound();
        }

        _sessions.Add(sessionId);
    }

    private async Task AttachSession(string sessionId)
    {
        _attaching[sessionId] = _attaching.GetValueOrDefault(sessionId) + 1;
        try
        {
            await _grains.GetGrain<ISessionGrain>(sessionId).Attached(Address);
        }
        catch
        {
            FinishAttach(sessionId);
            throw;
        }

        if (FinishAttach(sessionId))
        {
            throw BridgeException.SessionEnded(sessionId);
        }
    }

    /// <summary>Returns whether the session ended while attaching.</summary>
    private bool FinishAttach(string sessionId)
    {
        var left = _attaching[sessionId] - 1;
        if (left > 0)
        {
            _attaching[sessionId] = left;
            return _endedWhileAttaching.Contains(sessionId);
        }

        _attaching.Remove(sessionId);
        return _endedWhileAttaching.Remove(sessionId);
    }

    private static void CheckSessionId(string sessionId)
    {
        if (string.IsNullOrEmpty(sessionId))
        {
            throw BridgeException.InvalidArgument("session id must not be empty");
        }
    }
}
