using System.Buffers;
using BenchmarkDotNet.Attributes;
using Bridge.Contracts.Payloads;
using MessagePack;

namespace Bridge.Benchmarks.Payloads;

/// <summary>
/// What the host does to every queue item and value write (PayloadRules.Check), beside
/// what a .NET client pays to produce and read the same item with MessagePack-CSharp.
/// </summary>
[MemoryDiagnoser]
public class PayloadCodecBenchmarks
{
    /// <summary>The host's default MaxPayloadBytes (64 MiB).</summary>
    private const long MaxPayloadBytes = 64L * 1024 * 1024;

    private byte[] _encoded = [];
    private byte[] _bin16 = [];
    private object[][] _nested = [];
    private int[] _ints = [];
    private byte[] _pickle = [];

    [Params(PayloadShape.SmallInt, PayloadShape.Bin16, PayloadShape.Nested1000, PayloadShape.IntArray12500, PayloadShape.PickleExt)]
    public PayloadShape Shape { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _encoded = SamplePayloads.Encode(Shape);
        _bin16 = SamplePayloads.Bin16();
        _nested = SamplePayloads.Nested1000();
        _ints = SamplePayloads.IntArray12500();
        _pickle = SamplePayloads.PickleBody();
        if (PayloadRules.Check(_encoded, MaxPayloadBytes) is { } problem)
        {
            throw new InvalidOperationException($"the {Shape} sample is not a valid payload: {problem}");
        }
    }

    [Benchmark(Description = "PayloadRules.Check")]
    public string? Validate() => PayloadRules.Check(_encoded, MaxPayloadBytes);

    [Benchmark(Description = "MessagePack encode")]
    public byte[] Encode() => Shape switch
    {
        PayloadShape.SmallInt => MessagePackSerializer.Serialize(7),
        PayloadShape.Bin16 => MessagePackSerializer.Serialize(_bin16),
        PayloadShape.Nested1000 => MessagePackSerializer.Serialize(_nested),
        PayloadShape.IntArray12500 => MessagePackSerializer.Serialize(_ints),
        _ => SamplePayloads.PickleExt(_pickle),
    };

    [Benchmark(Description = "MessagePack decode")]
    public object Decode()
    {
        switch (Shape)
        {
            case PayloadShape.SmallInt:
                return MessagePackSerializer.Deserialize<int>(_encoded);
            case PayloadShape.Bin16:
                return MessagePackSerializer.Deserialize<byte[]>(_encoded);
            case PayloadShape.Nested1000:
                return MessagePackSerializer.Deserialize<object[][]>(_encoded);
            case PayloadShape.IntArray12500:
                return MessagePackSerializer.Deserialize<int[]>(_encoded);
            default:
                var reader = new MessagePackReader(_encoded);
                var extension = reader.ReadExtensionFormat();
                return extension.Data.ToArray();
        }
    }
}
