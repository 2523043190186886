using Bridge.Core.Objects.Runtime;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Bridge.Core.Objects;

/// <summary>
/// multiprocessing.Value and Array: little-endian elements of one C type, in a shared
/// segment that processes on this machine map and access directly; Read and Write serve
/// everyone else. The guarding lock is a separate lock-family object; its name is kept
/// here so attaching clients share it.
/// </summary>
[Reentrant]
[Orleans.Placement.PreferLocalPlacementAttribute]
internal sealed class ValueGrain : ObjectGrain, IValueGrain
{
    private readonly ILogger<ValueGrain> _logger;
    private readonly SharedSegments _segments;
    private string _typecode = "";
    private int _itemSize;
    private long _length;
    private bool _isArray;
    private SharedSegment? _segment;
    private string _lockName = "";
    private LockKind _lockKind;

    public ValueGrain(IGrainFactory grains, SharedSegments segments, ILogger<ValueGrain> logger)
        : base(grains, ObjectFamily.Value, "Value/Array", logger)
    {
        _logger = logger;
        _segments = segments;
    }

    public async Task<ValueDescriptor> Open(
        string sessionId,
        OpenMode mode,
        string typecode,
        long length,
        bool isArray,
        byte[] initial,
        string lockName,
        LockKind lockKind)
    {
        var itemSize = 0;
        if (mode != OpenMode.Attach)
        {
            itemSize = Typecodes.ItemSize(typecode);
            if (length < 1)
            {
                throw BridgeException.InvalidArgument($"length must be >= 1, got {length}");
            }

            if (!isArray && length != 1)
            {
                throw BridgeException.InvalidArgument($"a scalar Value has length 1, got {length}");
            }

            if (length > Array.MaxLength / itemSize)
            {
                throw BridgeException.TooLarge($"an array of {length} '{typecode}' items does not fit in memory");
            }

            initial ??= [];
            if (initial.Length != 0 && initial.Length != length * itemSize)
            {
                throw BridgeException.InvalidArgument(
                    $"initial contents are {initial.Length} bytes; {length} '{typecode}' items take {length * itemSize}");
            }

            lockName ??= "";
            if (lockName.Length > 0)
            {
                ObjectNames.Validate(lockName, creating: false);
            }
        }

        await Membership.Open(
            sessionId,
            mode,
            // Another spelling of the same element type attaches (a C# long's 'q' to a
            // Python 'l') and learns the value's own typecode from the descriptor.
            mismatch: () => !Typecodes.SameElements(_typecode, typecode) || _length != length || _isArray != isArray
                ? $"{Describe(_typecode, _length, _isArray)}, not {Describe(typecode, length, isArray)}"
                : null,
            create: () =>
            {
                _typecode = typecode;
                _itemSize = itemSize;
                _length = length;
                _isArray = isArray;
                _segment = _segments.Create(length * itemSize);
                if (initial.Length != 0)
                {
                    _segment.Write(0, initial);
                }

                _lockName = lockName;
                _lockKind = lockKind;
                Log.ObjectCreated(_logger, ObjectFamily.Value, Membership.Address.Name, sessionId);
            });
        return new ValueDescriptor(_typecode, _itemSize, _length, _isArray, _lockName, _lockKind, _segment?.Path ?? "");
    }

    public async Task<byte[]> Read(string sessionId, long index, long count)
    {
        await Membership.EnsureMember(sessionId);
        if (index < 0 || index > _length)
        {
            throw IndexError($"index {index} out of range for length {_length}");
        }

        if (count <= 0)
        {
            count = _length - index;
        }
        else if (count > _length - index)
        {
            throw IndexError($"reading {count} items at {index} goes past the end (length {_length})");
        }

        return Segment.Read(index * _itemSize, checked((int)(count * _itemSize)));
    }

    public async Task Write(string sessionId, long index, byte[] data)
    {
        await Membership.EnsureMember(sessionId);
        data ??= [];
        if (data.Length % _itemSize != 0)
        {
            throw BridgeException.InvalidArgument($"{data.Length} bytes are not whole '{_typecode}' items of {_itemSize} bytes");
        }

        var count = data.Length / _itemSize;
        if (index < 0 || index > _length || count > _length - index)
        {
            throw IndexError($"writing {count} items at {index} is out of range for length {_length}");
        }

        Segment.Write(index * _itemSize, data);
    }

    public override Task SessionEnded(string sessionId)
    {
        Membership.Leave(sessionId, ended: true);
        return Task.CompletedTask;
    }


    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        ResetState();
        return base.OnDeactivateAsync(reason, cancellationToken);
    }

    private protected override ObjectDetail Inspect(out int waiters)
    {
        waiters = 0;
        return new ValueDetail(_typecode, _length, _isArray, _lockName);
    }

    protected override void ResetState()
    {
        _segment?.Dispose();
        _segment = null;
    }

    // Read and Write run after EnsureMember, so the object exists and has its segment.
    private SharedSegment Segment => _segment ?? throw new InvalidOperationException("the value has no segment");

    private static string Describe(string typecode, long length, bool isArray) =>
        isArray ? $"an Array of {length} '{typecode}'" : $"a Value of type '{typecode}'";

    private static BridgeException IndexError(string message) =>
        new(BridgeErrorCode.InvalidArgument, "IndexError", message);
}
