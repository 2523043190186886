using Bridge.Contracts.Payloads;
using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Google.Protobuf;
using Google.Protobuf.Collections;
using System.Buffers;
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

    /// <summary>Ids the host issues (session and pool ids: 32 hex digits) are at most this long.</summary>
    public const int MaxIdLength = 64;

    /// <summary>
    /// A session id as Sessions.Hello issued it; one that no host could have issued is
    /// INVALID_ARGUMENT here, a well-formed one that is unknown or ended is NOT_FOUND later.
    /// </summary>
    public static string Session(string sessionId) =>
        string.IsNullOrEmpty(sessionId)
            ? throw BridgeException.InvalidArgument("session_id is required: call Sessions.Hello first")
            : Id(sessionId, "session_id");

    /// <summary>Free text a client describes itself with (HelloRequest's client_name, language) is cut to this.</summary>
    public const int MaxFreeTextLength = 256;

    /// <summary>
    /// Free text shown in host logs and status, never refused: cut to
    /// <see cref="MaxFreeTextLength"/> characters (an ellipsis marks the cut), with every
    /// control character (C0, DEL, C1: a newline that would forge a log line, an escape
    /// sequence) replaced by '?'.
    /// </summary>
    public static string FreeText(string text)
    {
        var cut = text.Length > MaxFreeTextLength;
        var kept = cut ? text.AsSpan(0, MaxFreeTextLength - 1) : text.AsSpan();
        if (!cut && !kept.ContainsAnyInRange('\0', '\u001f') && !kept.ContainsAnyInRange('\u007f', '\u009f'))
        {
            return text;
        }

        var clean = new System.Text.StringBuilder(kept.Length + 1);
        foreach (var c in kept)
        {
            clean.Append(char.IsControl(c) ? '?' : c);
        }

        return cut ? clean.Append('\u2026').ToString() : clean.ToString();
    }

    /// <summary>An owner (the calling thread within its session) is at most this long.</summary>
    public const int MaxOwnerLength = 64;

    /// <summary>
    /// The owner a lock or condition call names: a client's label for its thread, compared
    /// whole (so never cut): empty (the session's only thread) or 1..64 ASCII letters,
    /// digits and <c>_ . - : /</c>. Anything else is INVALID_ARGUMENT, and the refusal never
    /// echoes the owner (it names the first bad character by its code point).
    /// </summary>
    public static string Owner(string owner) =>
        Checked(owner, "owner", MaxOwnerLength, OwnerCharacters,
            $"the limit is {MaxOwnerLength}", "use ASCII letters, digits and _ . - : / only");

    /// <summary>A pool id as CreatePool issued it (see <see cref="Id"/>).</summary>
    public static string Pool(string poolId) =>
        string.IsNullOrEmpty(poolId)
            ? throw BridgeException.InvalidArgument("pool_id is required: use the one CreatePool returned")
            : Id(poolId, "pool_id");

    /// <summary>
    /// The rule for ids the host issues: 1..64 ASCII letters, digits, '-' and '_' (the host
    /// issues 32 hex digits). Checked before any lookup so garbage never becomes a grain key,
    /// and the refusal never echoes the id.
    /// </summary>
    private static string Id(string id, string field) =>
        Checked(id, field, MaxIdLength, IdCharacters,
            $"the host issues ids of at most {MaxIdLength}", "the host issues ids of ASCII letters, digits, '-' and '_' only");

    private const string AsciiLettersAndDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    private static readonly SearchValues<char> IdCharacters = SearchValues.Create(AsciiLettersAndDigits + "-_");

    private static readonly SearchValues<char> OwnerCharacters = SearchValues.Create(AsciiLettersAndDigits + "_.-:/");

    /// <summary>
    /// The shared rule of ids and owners: at most <paramref name="maxLength"/> characters,
    /// each one of <paramref name="allowed"/>; else INVALID_ARGUMENT naming the length or
    /// the first bad character by its code point, never echoing the value.
    /// </summary>
    private static string Checked(string value, string field, int maxLength, SearchValues<char> allowed, string lengthRule, string characterRule)
    {
        if (value.Length > maxLength)
        {
            throw BridgeException.InvalidArgument($"{field} is {value.Length} characters long; {lengthRule}");
        }

        var bad = value.AsSpan().IndexOfAnyExcept(allowed);
        if (bad >= 0)
        {
            throw BridgeException.InvalidArgument($"{field} has character U+{(int)value[bad]:X4} at index {bad}; {characterRule}");
        }

        return value;
    }

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
