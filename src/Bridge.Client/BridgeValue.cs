namespace Bridge.Client;

/// <summary>
/// A scalar living in the host's shared memory, shared by name (Python's
/// <c>multiprocessing.Value(typecode, value, name=...)</c>). Open one with
/// <see cref="BridgeSession.ValueAsync{T}(string?, T, CancellationToken)"/>. Each access is
/// one call; <see cref="UpdateAsync"/> reads and writes under the value's lock.
/// </summary>
/// <typeparam name="T">sbyte, byte, short, ushort, int, uint, long, ulong, float, double or bool
/// (C typecodes b B h H i I q Q f d ?; attaching also accepts l, L and c).</typeparam>
public sealed class BridgeValue<T>
    where T : unmanaged
{
    private readonly ValueCore<T> _core;

    internal BridgeValue(ValueCore<T> core) => _core = core;

    /// <summary>The host's name of the value.</summary>
    public string Name => _core.Name;

    /// <summary>Its C typecode (values.proto).</summary>
    public string Typecode => _core.Typecode;

    /// <summary>The RLock guarding the value (Python's <c>get_lock()</c>); null for a value created without one.</summary>
    public BridgeLock? Lock => _core.Lock;

    /// <summary>Reads the value (one call; does not take the lock).</summary>
    public async Task<T> GetAsync(CancellationToken cancellationToken = default) =>
        (await _core.ReadAsync(0, 1, cancellationToken).ConfigureAwait(false))[0];

    /// <summary>Writes the value (one call; does not take the lock).</summary>
    public Task SetAsync(T value, CancellationToken cancellationToken = default) =>
        _core.WriteAsync(0, new[] { value }, cancellationToken);

    /// <summary>
    /// Reads, applies <paramref name="update"/> and writes back while holding <see cref="Lock"/>
    /// (as <c>with v.get_lock(): v.value = update(v.value)</c>); returns the new value. Each
    /// call holds the lock as an owner of its own, so concurrent calls exclude each other;
    /// do not call it while holding <see cref="Lock"/> yourself (it would wait for you).
    /// </summary>
    public Task<T> UpdateAsync(Func<T, T> update, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(update);
        return _core.LockedAsync(
            async () =>
            {
                var value = update(await GetAsync(cancellationToken).ConfigureAwait(false));
                await SetAsync(value, cancellationToken).ConfigureAwait(false);
                return value;
            },
            cancellationToken);
    }
}

/// <summary>
/// A fixed-length array living in the host's shared memory, shared by name (Python's
/// <c>multiprocessing.Array(typecode, n, name=...)</c>). Open one with
/// <see cref="BridgeSession.ArrayAsync{T}(string?, int, CancellationToken)"/>. Each call reads
/// or writes a run of elements.
/// </summary>
/// <typeparam name="T">As for <see cref="BridgeValue{T}"/>.</typeparam>
public sealed class BridgeArray<T>
    where T : unmanaged
{
    private readonly ValueCore<T> _core;

    internal BridgeArray(ValueCore<T> core) => _core = core;

    /// <summary>The host's name of the array.</summary>
    public string Name => _core.Name;

    /// <summary>Its C typecode (values.proto).</summary>
    public string Typecode => _core.Typecode;

    /// <summary>Its number of elements.</summary>
    public long Length => _core.Length;

    /// <summary>The RLock guarding the array (Python's <c>get_lock()</c>); null for an array created without one.</summary>
    public BridgeLock? Lock => _core.Lock;

    /// <summary>Reads element <paramref name="index"/>; <see cref="ArgumentOutOfRangeException"/> past the end.</summary>
    public async Task<T> GetAsync(long index, CancellationToken cancellationToken = default) =>
        (await ReadAsync(index, 1, cancellationToken).ConfigureAwait(false))[0];

    /// <summary>Writes element <paramref name="index"/>; <see cref="ArgumentOutOfRangeException"/> past the end.</summary>
    public Task SetAsync(long index, T value, CancellationToken cancellationToken = default) =>
        WriteAsync(index, new[] { value }, cancellationToken);

    /// <summary>Reads every element.</summary>
    public Task<T[]> ReadAsync(CancellationToken cancellationToken = default) => _core.ReadAsync(0, 0, cancellationToken);

    /// <summary>Reads <paramref name="count"/> elements from <paramref name="index"/>.</summary>
    public Task<T[]> ReadAsync(long index, long count, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        return _core.ReadAsync(index, count, cancellationToken);
    }

    /// <summary>Writes <paramref name="values"/> from element <paramref name="index"/> on; <see cref="ArgumentOutOfRangeException"/> past the end.</summary>
    public Task WriteAsync(long index, ReadOnlyMemory<T> values, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        return _core.WriteAsync(index, values, cancellationToken);
    }
}
