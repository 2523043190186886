using System.Buffers;
using System.Text;
using Bridge.Contracts.V1;
using Bridge.Worker.Kernels;
using Google.Protobuf;
using MessagePack;

namespace Bridge.Worker.Tests;

public sealed class KernelInvokerTests
{
    private readonly KernelInvoker _invoker = new(new KernelCatalog(new CSharpKernelCompiler(cacheDirectory: null)));

    [Fact(Timeout = 10_000)]
    public async Task Starmap_unwraps_tuples_into_parameters()
    {
        await Task.Yield();
        var result = Run("Bridge.Kernels.Primes.Count", CallStyle.Starmap, Tuple(0L, 100L), Tuple(0L, 1000L), Array(0L, 10L));
        Assert.Null(result.Error);
        Assert.Equal([25L, 168L, 4L], result.Values.Select(v => MessagePackSerializer.Deserialize<long>(v.Memory)));
    }

    [Fact(Timeout = 10_000)]
    public async Task Map_passes_each_item_as_the_argument()
    {
        await Task.Yield();
        var result = Run("Bridge.Kernels.Math.SumOfSquares", CallStyle.Map, Pack(4L), Pack(10L));
        Assert.Null(result.Error);
        Assert.Equal([14L, 285L], result.Values.Select(v => MessagePackSerializer.Deserialize<long>(v.Memory)));

        var digest = Run("Bridge.Kernels.Hashing.Sha256", CallStyle.Map, Pack(Encoding.ASCII.GetBytes("abc")));
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Convert.ToHexStringLower(MessagePackSerializer.Deserialize<byte[]>(digest.Values[0].Memory)));
    }

    [Fact(Timeout = 10_000)]
    public async Task Call_binds_positional_and_keyword_arguments()
    {
        await Task.Yield();
        var item = Write((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(2);
            WriteTuple(ref w, 5L);
            w.WriteMapHeader(3);
            w.Write("width");
            w.Write(10);
            w.Write("maxIterations");
            w.Write(50);
            w.Write("height");
            w.Write(10);
        });
        var result = Run("Bridge.Kernels.Mandelbrot.Row", CallStyle.Call, item);
        Assert.Null(result.Error);
        Assert.Equal(Bridge.Kernels.Mandelbrot.Row(5, 10, 10, 50), MessagePackSerializer.Deserialize<int[]>(result.Values[0].Memory));
    }

    [Fact(Timeout = 10_000)]
    public async Task Wrong_arity_and_types_are_TypeErrors()
    {
        await Task.Yield();
        var tooFew = Run("Bridge.Kernels.Primes.Count", CallStyle.Starmap, Tuple(5L));
        Assert.Equal("TypeError", tooFew.Error.Type);
        Assert.Contains("missing required argument 'stop'", tooFew.Error.Message, StringComparison.Ordinal);

        var tooMany = Run("Bridge.Kernels.Primes.Count", CallStyle.Starmap, Tuple(1L, 2L, 3L));
        Assert.Equal("TypeError", tooMany.Error.Type);
        Assert.Contains("takes 2 arguments but 3 were given", tooMany.Error.Message, StringComparison.Ordinal);

        var wrongType = Run("Bridge.Kernels.Math.SumOfSquares", CallStyle.Map, Pack("ten"));
        Assert.Equal("TypeError", wrongType.Error.Type);
        Assert.Contains("argument 'n'", wrongType.Error.Message, StringComparison.Ordinal);

        var unknownKeyword = Run("Bridge.Kernels.Math.SumOfSquares", CallStyle.Call, Write((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(2);
            w.WriteArrayHeader(0);
            w.WriteMapHeader(1);
            w.Write("count");
            w.Write(3);
        }));
        Assert.Equal("TypeError", unknownKeyword.Error.Type);
        Assert.Contains("unexpected keyword argument 'count'", unknownKeyword.Error.Message, StringComparison.Ordinal);

        var pickled = Run("Bridge.Kernels.Math.SumOfSquares", CallStyle.Map, Write((ref MessagePackWriter w) => w.WriteExtensionFormat(new ExtensionResult(1, new byte[] { 0x80, 0x05, 0x4b, 0x03, 0x2e }))));
        Assert.Equal("TypeError", pickled.Error.Type);
        Assert.Contains("pickled Python object", pickled.Error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_kernel_exception_reports_type_message_and_stack_and_ends_the_chunk()
    {
        await Task.Yield();
        var result = Run("Bridge.Kernels.Math.SumOfSquares", CallStyle.Map, Pack(3L), Pack(4_000_000L), Pack(5L));
        Assert.Empty(result.Values);
        Assert.Equal("System.OverflowException", result.Error.Type);
        Assert.False(string.IsNullOrEmpty(result.Error.Message));
        Assert.Contains("Bridge.Kernels.Math.SumOfSquares", result.Error.Traceback, StringComparison.Ordinal);
        Assert.Equal(7, result.TaskId);
        Assert.Equal(Environment.ProcessId, result.WorkerPid);
    }

    [Fact(Timeout = 10_000)]
    public async Task Unknown_kernels_and_paths_are_reported()
    {
        await Task.Yield();
        Assert.Equal("AttributeError", Run("Bridge.Kernels.Primes.Nope", CallStyle.Map, Pack(1L)).Error.Type);
        Assert.Equal("AttributeError", Run("Bridge.Kernels.Nope.Count", CallStyle.Map, Pack(1L)).Error.Type);
        Assert.Equal("ValueError", Run("Count", CallStyle.Map, Pack(1L)).Error.Type);
        Assert.Equal("FileNotFoundError", Run("/nonexistent/My.dll:My.Type.Method", CallStyle.Map, Pack(1L)).Error.Type);
        Assert.Equal("ValueError", Run("relative/My.dll:My.Type.Method", CallStyle.Map, Pack(1L)).Error.Type);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_user_assembly_loads_by_path()
    {
        await Task.Yield();
        var kernels = typeof(Bridge.Kernels.Primes).Assembly.Location;
        var primes = Run($"{kernels}:Bridge.Kernels.Primes.Count", CallStyle.Starmap, Tuple(0L, 100L));
        Assert.Null(primes.Error);
        Assert.Equal(25L, MessagePackSerializer.Deserialize<long>(primes.Values[0].Memory));

        var tests = typeof(TestKernels).Assembly.Location;
        // A tuple result travels as ext 2 around an array (Python gets a tuple).
        var divmod = Run($"{tests}:Bridge.Worker.Tests.TestKernels.DivMod", CallStyle.Starmap, Tuple(17L, 5L));
        Assert.Null(divmod.Error);
        var reader = new MessagePackReader(divmod.Values[0].Memory);
        var header = reader.ReadExtensionFormatHeader();
        Assert.Equal(2, header.TypeCode);
        Assert.Equal([3L, 2L], MessagePackSerializer.Deserialize<long[]>(reader.ReadRaw(header.Length)));

        // Optional parameters take their defaults; ints widen to double; lists of tuples convert.
        var scaled = Run($"{tests}:Bridge.Worker.Tests.TestKernels.Scale", CallStyle.Map, Tuple(1L, 2.5, 3L));
        Assert.Null(scaled.Error);
        Assert.Equal(13.0, MessagePackSerializer.Deserialize<double>(scaled.Values[0].Memory));

        // Overloads are chosen by what the arguments convert to.
        var words = Run($"{tests}:Bridge.Worker.Tests.TestKernels.Count", CallStyle.Map, Array("a", "b", "c"));
        var counts = Run($"{tests}:Bridge.Worker.Tests.TestKernels.Count", CallStyle.Map, Write((ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("a");
            w.Write(1);
        }));
        Assert.Equal(3, MessagePackSerializer.Deserialize<int>(words.Values[0].Memory));
        Assert.Equal(1, MessagePackSerializer.Deserialize<int>(counts.Values[0].Memory));

        var async = Run($"{tests}:Bridge.Worker.Tests.TestKernels.Later", CallStyle.Call, Write((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(2);
            w.WriteArrayHeader(0);
            w.WriteMapHeader(0);
        }));
        Assert.Equal("TypeError", async.Error.Type);
    }

    private TaskResult Run(string kernel, CallStyle style, params byte[][] items)
    {
        var chunk = new TaskChunk { TaskId = 7, Function = new Callable { Kernel = kernel }, Style = style };
        chunk.Items.AddRange(items.Select(ByteString.CopyFrom));
        return _invoker.Run(chunk);
    }

    private static byte[] Pack<T>(T value) => MessagePackSerializer.Serialize(value);

    private static byte[] Array(params object[] values) => MessagePackSerializer.Serialize(values);

    /// <summary>A Python tuple as gilbridge._codec writes it: ext 2 around an array.</summary>
    private static byte[] Tuple(params object[] values) => Write((ref MessagePackWriter w) => WriteTuple(ref w, values));

    private static void WriteTuple(ref MessagePackWriter writer, params object[] values)
    {
        var body = MessagePackSerializer.Serialize(values);
        writer.WriteExtensionFormat(new ExtensionResult(2, body));
    }

    private delegate void Writing(ref MessagePackWriter writer);

    private static byte[] Write(Writing write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        write(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
