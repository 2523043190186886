using Bridge.Contracts.Payloads;
using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Google.Protobuf;
using Google.Protobuf.Collections;
using System.Runtime.InteropServices;
using CoreOpenMode = Bridge.Core.Objects.OpenMode;
using WireOpenMode = Bridge.Contracts.V1.OpenMode;

namespace Bridge.Host.Services;

/// <summary>Turns wire requests into domain arguments, rejecting bad input with InvalidArgument.</summary>
internal static class Requests
{
    /// <summary>Waits longer than this are "forever": TimeSpan cannot hold Python's largest floats.</summary>
    private const double ForeverSeconds = 1e9;

    /// <summary>null: wait forever; Zero: do not wait.</summary>
    public static TimeSpan? Timeout(WaitPolicy? wait)
    {
        if (wait is null)
        {
            return null;
        }

        if (!wait.Block)
        {
            return TimeSpan.Zero;
        }

        if (!wait.HasTimeoutSeconds)
        {
            return null;
        }

        var seconds = wait.TimeoutSeconds;
        if (double.IsNaN(seconds) || seconds < 0)
        {
            throw BridgeException.InvalidArgument($"'timeout' must be a non-negative number (got {seconds})");
        }

        return seconds >= ForeverSeconds ? null : TimeSpan.FromSeconds(seconds);
    }

    public static string Session(string sessionId) =>
        string.IsNullOrEmpty(sessionId)
            ? throw BridgeException.InvalidArgument("session_id is required: call Sessions.Hello first")
            : sessionId;

    public static (string Session, string Name) Target(ObjectRef? target)
    {
        if (target is null)
        {
            throw BridgeException.InvalidArgument("target is required");
        }

        ObjectNames.Validate(target.Name, creating: false);
        return (Session(target.SessionId), target.Name);
    }

    /// <summary>The name to open: a new anonymous name for an empty one (not when attaching).</summary>
    public static string NameToOpen(string name, WireOpenMode mode)
    {
        if (string.IsNullOrEmpty(name))
        {
            return mode == WireOpenMode.Attach
                ? throw BridgeException.InvalidArgument("attaching needs the object's name")
                : ObjectNames.NewAnonymous();
        }

        ObjectNames.Validate(name, creating: mode != WireOpenMode.Attach);
        return name;
    }

    public static CoreOpenMode Mode(WireOpenMode mode, string requestedName) => mode switch
    {
        _ when string.IsNullOrEmpty(requestedName) => CoreOpenMode.Create,
        WireOpenMode.CreateOrAttach => CoreOpenMode.CreateOrAttach,
        WireOpenMode.Attach => CoreOpenMode.Attach,
        WireOpenMode.Create => CoreOpenMode.Create,
        _ => throw BridgeException.InvalidArgument($"unknown open mode {(int)mode}"),
    };

    public static LockKind LockKindOf(ObjectKind kind) => kind switch
    {
        ObjectKind.Lock => LockKind.Lock,
        ObjectKind.Rlock => LockKind.RLock,
        ObjectKind.Semaphore => LockKind.Semaphore,
        ObjectKind.BoundedSemaphore => LockKind.BoundedSemaphore,
        _ => throw BridgeException.InvalidArgument($"{kind} is not a lock kind: use LOCK, RLOCK, SEMAPHORE or BOUNDED_SEMAPHORE"),
    };

    public static ObjectKind WireKind(LockKind kind) => kind switch
    {
        LockKind.Lock => ObjectKind.Lock,
        LockKind.RLock => ObjectKind.Rlock,
        LockKind.Semaphore => ObjectKind.Semaphore,
        _ => ObjectKind.BoundedSemaphore,
    };

    public static QueueKind QueueKindOf(ObjectKind kind) => kind switch
    {
        ObjectKind.Queue => QueueKind.Queue,
        ObjectKind.JoinableQueue => QueueKind.Joinable,
        ObjectKind.SimpleQueue => QueueKind.Simple,
        _ => throw BridgeException.InvalidArgument($"{kind} is not a queue kind: use QUEUE, JOINABLE_QUEUE or SIMPLE_QUEUE"),
    };

    public static ObjectKind WireKind(QueueKind kind) => kind switch
    {
        QueueKind.Queue => ObjectKind.Queue,
        QueueKind.Joinable => ObjectKind.JoinableQueue,
        _ => ObjectKind.SimpleQueue,
    };

    public static ObjectFamily FamilyOf(ObjectKind kind) => kind switch
    {
        ObjectKind.Lock or ObjectKind.Rlock or ObjectKind.Semaphore or ObjectKind.BoundedSemaphore => ObjectFamily.Lock,
        ObjectKind.Event => ObjectFamily.Event,
        ObjectKind.Condition => ObjectFamily.Condition,
        ObjectKind.Barrier => ObjectFamily.Barrier,
        ObjectKind.Queue or ObjectKind.JoinableQueue or ObjectKind.SimpleQueue => ObjectFamily.Queue,
        ObjectKind.Value => ObjectFamily.Value,
        _ => throw BridgeException.InvalidArgument($"unknown object kind {(int)kind}"),
    };

    /// <summary>
    /// Checks every item against the payload rules and hands out their arrays without
    /// copying (protobuf's ByteString owns a private array per parsed field).
    /// </summary>
    public static PayloadBatch Payloads(RepeatedField<ByteString> items, long maxBytes)
    {
        var arrays = new byte[items.Count][];
        for (var i = 0; i < arrays.Length; i++)
        {
            var item = items[i];
            if (PayloadRules.Check(item.Span, maxBytes) is { } problem)
            {
                throw item.Length > maxBytes
                    ? BridgeException.TooLarge($"item {i}: {problem}")
                    : BridgeException.InvalidArgument($"item {i}: {problem}");
            }

            arrays[i] = Array(item);
        }

        return new PayloadBatch(arrays);
    }

    public static byte[] Array(ByteString bytes) =>
        MemoryMarshal.TryGetArray(bytes.Memory, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : bytes.ToByteArray();
}
