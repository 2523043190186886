using Bridge.Core.Sessions;
using Microsoft.Extensions.Logging;

namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// The life of a named object, shared by every object grain: created or not, and the set
/// of sessions referencing it. Opening and first use attach the calling session (the
/// session grain records the object so it can tell it when the session ends); when the
/// last session leaves, the object is freed and later calls are NotFound.
///
/// In a cluster each creation is an incarnation recorded in the <see cref="IObjectLedger"/>
/// and erased when freed. An activation that finds a record left behind belongs to an
/// object whose host died: it is lost. Calls then raise Lost (DataLoss), never act on an
/// empty object; creating the name again makes a new incarnation, and a session that had
/// used the lost one (its session grain remembers the address) still gets Lost on its
/// first call to the new one, so an old reference never silently reaches the new object.
/// </summary>
internal sealed class ObjectMembership
{
    private readonly IGrainFactory _grains;
    private readonly IObjectLedger _ledger;
    private readonly string _host;
    private readonly ILogger _logger;
    private readonly string _noun;
    private readonly Action _onCreated;
    private readonly Action _onFreed;
    private readonly HashSet<string> _sessions = new(StringComparer.Ordinal);

    // The silo holding each member session's grain: when that host dies, nothing else
    // would end its sessions here (their grains, which would, died with it).
    private readonly Dictionary<string, string> _sessionSilos = new(StringComparer.Ordinal);

    // Sessions whose Attached call is in flight, and those of them that ended meanwhile:
    // SessionEnded may overtake the reply to Attached, and must still win.
    private readonly Dictionary<string, int> _attaching = new(StringComparer.Ordinal);
    private readonly HashSet<string> _endedWhileAttaching = new(StringComparer.Ordinal);

    /// <param name="noun">How errors name the family, e.g. "Lock/RLock/Semaphore".</param>
    /// <param name="onCreated">Runs when an Open creates the object.</param>
    /// <param name="onFreed">Runs when the last session left: reset the state.</param>
    /// <param name="host">This host's identity, recorded with each incarnation.</param>
    public ObjectMembership(
        IGrainFactory grains, IObjectLedger ledger, string host, ILogger logger, ObjectAddress address, string noun, Action onCreated, Action onFreed)
    {
        _grains = grains;
        _ledger = ledger;
        _host = host;
        _logger = logger;
        Address = address;
        _noun = noun;
        _onCreated = onCreated;
        _onFreed = onFreed;
    }

    public ObjectAddress Address { get; }

    public bool IsCreated { get; private set; }

    /// <summary>Sessions referencing the object.</summary>
    public int SessionCount => _sessions.Count;

    /// <summary>The host with which an earlier incarnation of this object was lost; null when none was.</summary>
    public string? LostWith { get; private set; }

    private ObjectIncarnation? Incarnation { get; set; }

    /// <summary>At activation: reads the ledger for an incarnation that died with its host.</summary>
    public async Task Recover(CancellationToken cancellationToken)
    {
        try
        {
            if (await _ledger.Recorded(Address, cancellationToken) is { } lost)
            {
                LostWith = lost.Host;
                Log.ObjectLost(_logger, Address.Family, Address.Name, lost.Host);
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // Without the ledger a lost object passes for one never created (NotFound).
            Log.LedgerFailed(_logger, Address.Family, Address.Name, exception.Message);
        }
    }

    /// <summary>Some Open or first call is waiting for its session grain.</summary>
    public bool IsAttaching => _attaching.Count > 0;

    public bool IsMember(string sessionId) => _sessions.Contains(sessionId);

    /// <summary>The member sessions held by the silo <paramref name="silo"/> (a parsable silo address).</summary>
    public IReadOnlyList<string> SessionsOf(string silo) =>
        [.. _sessionSilos.Where(session => session.Value == silo).Select(session => session.Key)];

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
        string? silo = null;
        if (!_sessions.Contains(sessionId))
        {
            silo = (await AttachSession(sessionId)).Silo;

            // Another call may have created or freed the object while this one waited.
            CheckOpen(mode, mismatch);
        }

        var created = false;
        if (!IsCreated)
        {
            create();
            IsCreated = true;
            _onCreated();
            created = true;
        }

        AddMember(sessionId, silo);
        if (created)
        {
            await RecordIncarnation();
        }
    }

    /// <summary>
    /// NotFound unless the object exists; attaches the session on its first call. Completes
    /// synchronously for a session already attached (the hot path).
    /// </summary>
    public ValueTask EnsureMember(string sessionId)
    {
        if (!IsCreated)
        {
            throw Gone();
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

        if (!_sessions.Remove(sessionId))
        {
            return false;
        }

        _sessionSilos.Remove(sessionId);
        if (_sessions.Count > 0 || !IsCreated)
        {
            return false;
        }

        IsCreated = false;
        _onFreed();
        if (Incarnation is { } incarnation)
        {
            Incarnation = null;
            _ = EraseIncarnation(incarnation);
        }

        return true;
    }

    public BridgeException NotFound() =>
        BridgeException.NotFound($"no {_noun} named '{Address.Name}' (never created, or freed after its last user detached)");

    /// <summary>Lost when an incarnation of the object died with its host, else NotFound.</summary>
    private BridgeException Gone() =>
        LostWith is { } host ? BridgeException.Lost(_noun, Address.Name, host) : NotFound();

    private async Task RecordIncarnation()
    {
        var incarnation = ObjectIncarnation.New(_host);
        Incarnation = incarnation;
        try
        {
            await _ledger.Record(Address, incarnation, CancellationToken.None);
        }
        catch (Exception exception)
        {
            // The object works; only its loss would go unnoticed (NotFound instead of Lost).
            Log.LedgerFailed(_logger, Address.Family, Address.Name, exception.Message);
        }
    }

    private async Task EraseIncarnation(ObjectIncarnation incarnation)
    {
        try
        {
            await _ledger.Erase(Address, incarnation, CancellationToken.None);
        }
        catch (Exception exception)
        {
            // A later activation will report this freed object as lost.
            Log.LedgerFailed(_logger, Address.Family, Address.Name, exception.Message);
        }
    }

    private void CheckOpen(OpenMode mode, Func<string?> mismatch)
    {
        switch (mode)
        {
            case OpenMode.Create when IsCreated:
                throw BridgeException.AlreadyExists($"a {_noun} named '{Address.Name}' already exists");
            case OpenMode.Attach when !IsCreated:
                throw Gone();
            case OpenMode.CreateOrAttach when IsCreated && mismatch() is { } difference:
                throw BridgeException.AlreadyExists($"'{Address.Name}' already exists as {difference}");
        }
    }

    private async Task Join(string sessionId)
    {
        CheckSessionId(sessionId);
        // Another first call of this session in flight also records the address.
        var concurrent = _attaching.ContainsKey(sessionId);
        var attachment = await AttachSession(sessionId);
        var recordedBefore = !attachment.Added;
        if (!IsCreated)
        {
            throw Gone();
        }

        if (recordedBefore && !concurrent && !_sessions.Contains(sessionId) && LostWith is { } host)
        {
            // The session used the incarnation that was lost, not this one.
            throw BridgeException.Lost(_noun, Address.Name, host);
        }

        AddMember(sessionId, attachment.Silo);
    }

    /// <summary>Makes the session a member; <paramref name="silo"/> null: it is one already.</summary>
    private void AddMember(string sessionId, string? silo)
    {
        _sessions.Add(sessionId);
        if (silo is not null)
        {
            _sessionSilos[sessionId] = silo;
        }
    }

    /// <summary>Records the object with the session (Added false when the session had it already).</summary>
    private async Task<SessionAttachment> AttachSession(string sessionId)
    {
        _attaching[sessionId] = _attaching.GetValueOrDefault(sessionId) + 1;
        SessionAttachment added;
        try
        {
            added = await _grains.GetGrain<ISessionGrain>(sessionId).Attached(Address);
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

        return added;
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
