using System.Runtime.InteropServices;
using Bridge.Contracts.V1;
using Google.Protobuf;

namespace Bridge.Client;

/// <summary>
/// The calls of one shared value or array: whole elements as their little-endian bytes,
/// read and written through the host (one call per access). Processes on the host's machine
/// could map <see cref="ValueInfo.Segment"/> instead, as Python's client does; this client
/// does not, so it works the same against a host on another machine.
/// </summary>
internal sealed class ValueCore<T>
    where T : unmanaged
{
    private readonly BridgeSession _session;

    public ValueCore(BridgeSession session, ValueInfo info)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("shared values are little-endian; this machine is not");
        }

        ValueTypes.Check<T>(info);
        _session = session;
        Name = info.Name;
        Typecode = info.Typecode;
        Length = info.Length;
        Lock = string.IsNullOrEmpty(info.LockName)
            ? null
            : new BridgeLock(new LockCore(session, info.LockName, info.LockKind == ObjectKind.Lock ? ObjectKind.Lock : ObjectKind.Rlock, session.NewOwner()));
    }

    public string Name { get; }

    public string Typecode { get; }

    public long Length { get; }

    public BridgeLock? Lock { get; }

    public async Task<T[]> ReadAsync(long index, long count, CancellationToken cancellationToken)
    {
        var request = new ReadRequest { Target = _session.Ref(Name), Index = index, Count = count };
        var reply = await _session.CallAsync(_session.SharedValues.ReadAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
        return MemoryMarshal.Cast<byte, T>(reply.Data.Span).ToArray();
    }

    public async Task WriteAsync(long index, ReadOnlyMemory<T> values, CancellationToken cancellationToken)
    {
        var data = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.Span));
        var request = new WriteRequest { Target = _session.Ref(Name), Index = index, Data = data };
        await _session.CallAsync(_session.SharedValues.WriteAsync(request, cancellationToken: cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs <paramref name="body"/> holding the lock (when the value has one) as an owner of
    /// its own: the lock is an RLock, re-entrant for one owner, so concurrent calls through
    /// one handle would not exclude each other.
    /// </summary>
    public async Task<TResult> LockedAsync<TResult>(Func<Task<TResult>> body, CancellationToken cancellationToken)
    {
        if (Lock is null)
        {
            return await body().ConfigureAwait(false);
        }

        var guard = new LockCore(_session, Lock.Name, Lock.Core.Kind, _session.NewOwner());
        await using (await guard.HoldAsync(null, cancellationToken).ConfigureAwait(false))
        {
            return await body().ConfigureAwait(false);
        }
    }
}
