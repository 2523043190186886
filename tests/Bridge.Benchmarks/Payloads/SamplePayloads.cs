using System.Buffers;
using Bridge.Contracts.Payloads;
using MessagePack;

namespace Bridge.Benchmarks.Payloads;

/// <summary>The payload shapes the host sees most, as the Python client encodes them.</summary>
public enum PayloadShape
{
    /// <summary>A small int (a counter, a task index): one byte.</summary>
    SmallInt,

    /// <summary>16 random bytes (a key, a hash prefix): bin 8.</summary>
    Bin16,

    /// <summary>A list of 1,000 [int, str, float] lists: 2,000 nested headers to walk.</summary>
    Nested1000,

    /// <summary>12,500 ints in one array, the size of a Pool.map chunk of range(50_000) on 4 workers.</summary>
    IntArray12500,

    /// <summary>A pickled Python object (extension type 1), as for an instance of a user class.</summary>
    PickleExt,
}

/// <summary>One sample per shape: the .NET value and its MessagePack bytes.</summary>
public static class SamplePayloads
{
    /// <summary>
    /// The size of a protocol-5 pickle of a small dataclass instance. No host code reads a
    /// pickle's body (only Python clients do), so only its length matters here.
    /// </summary>
    private const int PickleBodyBytes = 120;

    public static byte[] Encode(PayloadShape shape) => shape switch
    {
        PayloadShape.SmallInt => MessagePackSerializer.Serialize(7),
        PayloadShape.Bin16 => MessagePackSerializer.Serialize(Bin16()),
        PayloadShape.Nested1000 => MessagePackSerializer.Serialize(Nested1000()),
        PayloadShape.IntArray12500 => MessagePackSerializer.Serialize(IntArray12500()),
        PayloadShape.PickleExt => PickleExt(PickleBody()),
        _ => throw new ArgumentOutOfRangeException(nameof(shape), shape, null),
    };

    public static byte[] Bin16() => Enumerable.Range(0, 16).Select(i => (byte)(i * 37)).ToArray();

    public static object[][] Nested1000() =>
        Enumerable.Range(0, 1000).Select(i => new object[] { i, $"item-{i}", i * 0.5 }).ToArray();

    public static int[] IntArray12500() => Enumerable.Range(0, 12_500).ToArray();

    public static byte[] PickleBody()
    {
        var body = new byte[PickleBodyBytes];
        body[0] = 0x80; // PROTO
        body[1] = 5;
        body[^1] = (byte)'.'; // STOP
        return body;
    }

    /// <summary>The extension-type-1 envelope the Python client puts around a pickle.</summary>
    public static byte[] PickleExt(byte[] pickle)
    {
        var buffer = new ArrayBufferWriter<byte>(pickle.Length + 8);
        var writer = new MessagePackWriter(buffer);
        writer.WriteExtensionFormat(new ExtensionResult(PayloadRules.PickleExtension, pickle));
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
