using BenchmarkDotNet.Attributes;
using Bridge.Contracts.V1;
using Google.Protobuf;
using MessagePack;

namespace Bridge.Benchmarks.Payloads;

/// <summary>How a chunk of 12,500 calls is laid out in the Execution messages.</summary>
public enum ChunkLayout
{
    /// <summary>Today's wire format: one MessagePack payload per call, 12,500 repeated bytes fields.</summary>
    ItemPerCall,

    /// <summary>The alternative: the whole chunk as one MessagePack array in a single bytes field.</summary>
    OnePackedItem,
}

/// <summary>
/// Protobuf cost of a Pool.map chunk on the way to a worker (TaskChunk) and back
/// (TaskResult): the host parses each from one stream and writes it to another.
/// </summary>
[MemoryDiagnoser]
public class TaskMessageBenchmarks
{
    private const int CallsPerChunk = 12_500;

    private TaskChunk _chunk = new();
    private TaskResult _result = new();
    private byte[] _chunkBytes = [];
    private byte[] _resultBytes = [];

    [Params(ChunkLayout.ItemPerCall, ChunkLayout.OnePackedItem)]
    public ChunkLayout Layout { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _chunk = new TaskChunk { TaskId = 42, Function = new Callable { Kernel = "Bridge.Kernels.Math.SumOfSquares" }, Style = CallStyle.Map };
        _result = new TaskResult { TaskId = 42, WorkerPid = 4242 };
        if (Layout == ChunkLayout.ItemPerCall)
        {
            for (var i = 0; i < CallsPerChunk; i++)
            {
                _chunk.Items.Add(ByteString.CopyFrom(MessagePackSerializer.Serialize(i)));
                _result.Values.Add(ByteString.CopyFrom(MessagePackSerializer.Serialize((long)i * i)));
            }
        }
        else
        {
            var arguments = Enumerable.Range(0, CallsPerChunk).ToArray();
            var squares = arguments.Select(i => (long)i * i).ToArray();
            _chunk.Items.Add(ByteString.CopyFrom(MessagePackSerializer.Serialize(arguments)));
            _result.Values.Add(ByteString.CopyFrom(MessagePackSerializer.Serialize(squares)));
        }

        _chunkBytes = _chunk.ToByteArray();
        _resultBytes = _result.ToByteArray();
    }

    [Benchmark(Description = "TaskChunk serialize")]
    public byte[] SerializeChunk() => _chunk.ToByteArray();

    [Benchmark(Description = "TaskChunk parse")]
    public TaskChunk ParseChunk() => TaskChunk.Parser.ParseFrom(_chunkBytes);

    [Benchmark(Description = "TaskResult serialize")]
    public byte[] SerializeResult() => _result.ToByteArray();

    [Benchmark(Description = "TaskResult parse")]
    public TaskResult ParseResult() => TaskResult.Parser.ParseFrom(_resultBytes);
}
