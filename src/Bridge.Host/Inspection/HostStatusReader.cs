using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using CoreObjectStatus = Bridge.Core.Objects.ObjectStatus;
using Bridge.Core.Sessions;
using Bridge.Host.Execution;

namespace Bridge.Host.Inspection;

/// <summary>
/// What <c>Sessions.GetHostStatus</c> answers: this host's sessions (from the session
/// tracker), the objects of its silo (from the object catalog, each asked for its state),
/// its pools and workers. Asking objects is the only part that waits: it is bounded in
/// count and in time, so a busy or wedged object costs the status at most the deadline.
/// </summary>
internal sealed class HostStatusReader(
    IGrainFactory grains,
    SessionTracker sessions,
    ObjectCatalog catalog,
    PoolRegistry pools,
    WorkerLauncher launcher,
    TimeProvider time,
    ILogger<HostStatusReader> logger)
{
    public const int DefaultMaxObjects = 200;
    public const int MaxObjectsLimit = 5000;

    /// <summary>How long objects may take to answer, together.</summary>
    public static readonly TimeSpan ObjectDeadline = TimeSpan.FromSeconds(2);

    // Grain calls in flight at once: enough to describe hundreds of objects well within the
    // deadline, few enough not to crowd out the calls clients are making meanwhile.
    private const int Parallelism = 16;

    /// <summary>The status; <paramref name="maxObjects"/> 0 means <see cref="DefaultMaxObjects"/>.</summary>
    public async Task<HostStatus> ReadAsync(int maxObjects, CancellationToken cancellationToken)
    {
        if (maxObjects < 0 || maxObjects > MaxObjectsLimit)
        {
            throw BridgeException.InvalidArgument($"max_objects must be between 0 and {MaxObjectsLimit}, got {maxObjects}");
        }

        var status = new HostStatus
        {
            Workers = launcher.RunningWorkers,
            WorkersInPools = pools.WorkersInPools,
        };
        var addresses = catalog.Addresses()
            .OrderBy(address => ObjectNames.IsAnonymous(address.Name))
            .ThenBy(address => address.Family)
            .ThenBy(address => address.Name, StringComparer.Ordinal)
            .ToList();
        var listed = addresses.Take(maxObjects == 0 ? DefaultMaxObjects : maxObjects).ToList();
        var answers = await AskAsync(listed, cancellationToken);
        var unanswered = new List<ObjectAddress>();
        for (var i = 0; i < listed.Count; i++)
        {
            if (!answers[i].Answered)
            {
                unanswered.Add(listed[i]);
                status.Objects.Add(StatusMessages.Unanswered(listed[i]));
            }
            else if (answers[i].Status is { } described)
            {
                status.Objects.Add(StatusMessages.Object(described));
            }

            // Else it was freed since the catalog was read: no longer this host's.
        }

        // The sessions are read after the objects answered: a session attaches to an object
        // (and counts it) before the object lists it, so every session an object counts is
        // listed here counting it. Read before, a session that attached in between was
        // listed at 0 objects (or not at all) beside an object that counted it.
        var now = time.GetUtcNow();
        foreach (var session in sessions.Sessions())
        {
            status.Sessions.Add(new SessionStatus
            {
                SessionId = session.Id,
                ClientName = session.ClientName,
                Pid = session.Pid,
                Language = session.Language,
                AgeSeconds = Math.Max(0, (now - session.StartedAt).TotalSeconds),
                Objects = session.Objects,
            });
        }

        status.ObjectsOmitted = addresses.Count - listed.Count;
        status.ObjectsUnanswered = unanswered.Count;
        if (unanswered.Count > 0)
        {
            StatusLog.ObjectsUnanswered(logger, unanswered.Count, ObjectDeadline.TotalMilliseconds, unanswered[0].Family, unanswered[0].Name);
        }

        status.Pools.AddRange(pools.Statuses());
        return status;
    }

    /// <summary>Each object's status (null: freed meanwhile), or not answered before the deadline.</summary>
    private async Task<(bool Answered, CoreObjectStatus? Status)[]> AskAsync(IReadOnlyList<ObjectAddress> addresses, CancellationToken cancellationToken)
    {
        var answers = new (bool Answered, CoreObjectStatus? Status)[addresses.Count];
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(ObjectDeadline);
        try
        {
            await Parallel.ForEachAsync(
                Enumerable.Range(0, addresses.Count),
                new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = deadline.Token },
                async (i, token) =>
                {
                    // The grain call itself cannot be cancelled: WaitAsync stops waiting for it.
                    answers[i] = (true, await ObjectGrains.Get(grains, addresses[i]).GetStatus().WaitAsync(token));
                });
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The deadline passed: the objects that had not answered stay unanswered.
        }

        return answers;
    }
}
