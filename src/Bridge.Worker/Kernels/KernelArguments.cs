using System.Buffers;
using Bridge.Contracts.V1;
using MessagePack;

namespace Bridge.Worker.Kernels;

/// <summary>
/// One call's arguments as MessagePack slices, each still to be converted to its
/// parameter's type. Built from a chunk item according to the call style (README
/// "Payloads"): MAP passes the item itself, STARMAP its elements, CALL is [args, kwargs].
/// </summary>
internal sealed class KernelArguments
{
    /// <summary>
    /// Deeper nesting than any sensible argument: bounds the recursion of the rewrite, of
    /// splitting an item into arguments, and of their conversion (untrusted data: a deeper
    /// document is a ValueError, not a stack overflow that would end the worker).
    /// </summary>
    public const int MaxDepth = 256;

    private KernelArguments(List<ReadOnlyMemory<byte>> positional, Dictionary<string, ReadOnlyMemory<byte>> named)
    {
        Positional = positional;
        Named = named;
    }

    public IReadOnlyList<ReadOnlyMemory<byte>> Positional { get; }

    public IReadOnlyDictionary<string, ReadOnlyMemory<byte>> Named { get; }

    /// <exception cref="KernelException">The item does not fit the style, or holds a pickled (Python-only) value.</exception>
    public static KernelArguments Parse(CallStyle style, ReadOnlyMemory<byte> item)
    {
        var plain = WithoutTuples(item);
        var positional = new List<ReadOnlyMemory<byte>>();
        var named = new Dictionary<string, ReadOnlyMemory<byte>>(StringComparer.Ordinal);
        var reader = new MessagePackReader(plain);
        try
        {
            switch (style)
            {
                case CallStyle.Map:
                    positional.Add(plain);
                    break;
                case CallStyle.Starmap:
                    if (reader.NextMessagePackType != MessagePackType.Array)
                    {
                        throw new KernelException("TypeError", $"starmap needs each item to be a sequence of arguments, got a MessagePack {reader.NextMessagePackType}");
                    }

                    ReadElements(ref reader, plain, positional);
                    break;
                case CallStyle.Call:
                    if (reader.NextMessagePackType != MessagePackType.Array || reader.ReadArrayHeader() != 2)
                    {
                        throw new KernelException("ValueError", "a CALL item must be [args, kwargs]");
                    }

                    if (reader.NextMessagePackType != MessagePackType.Array)
                    {
                        throw new KernelException("ValueError", "a CALL item's args must be an array");
                    }

                    ReadElements(ref reader, plain, positional);
                    if (reader.TryReadNil())
                    {
                        break;
                    }

                    if (reader.NextMessagePackType != MessagePackType.Map)
                    {
                        throw new KernelException("ValueError", "a CALL item's kwargs must be a map");
                    }

                    var count = reader.ReadMapHeader();
                    for (var i = 0; i < count; i++)
                    {
                        if (reader.NextMessagePackType != MessagePackType.String)
                        {
                            throw new KernelException("TypeError", "keywords must be strings");
                        }

                        var key = reader.ReadString()!;
                        var start = (int)reader.Consumed;
                        Skip(ref reader, 0);
                        named[key] = plain[start..(int)reader.Consumed];
                    }

                    break;
                default:
                    throw new KernelException("ValueError", $"call style {style} cannot run a C# kernel (RUN_PROCESS runs Python Process objects)");
            }
        }
        catch (MessagePackSerializationException exception)
        {
            throw new KernelException("ValueError", $"malformed MessagePack item: {exception.Message}");
        }
        catch (EndOfStreamException)
        {
            throw new KernelException("ValueError", "truncated MessagePack item");
        }

        return new KernelArguments(positional, named);
    }

    private static void ReadElements(ref MessagePackReader reader, ReadOnlyMemory<byte> source, List<ReadOnlyMemory<byte>> into)
    {
        var count = reader.ReadArrayHeader();
        for (var i = 0; i < count; i++)
        {
            var start = (int)reader.Consumed;
            Skip(ref reader, 0);
            into.Add(source[start..(int)reader.Consumed]);
        }
    }

    /// <summary>Skips one value; <see cref="MessagePackReader.Skip"/> recurses into arrays and maps without a bound.</summary>
    private static void Skip(ref MessagePackReader reader, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new KernelException("ValueError", $"arguments nested deeper than {MaxDepth} levels");
        }

        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Array:
            {
                var count = reader.ReadArrayHeader();
                for (var i = 0; i < count; i++)
                {
                    Skip(ref reader, depth + 1);
                }

                break;
            }

            case MessagePackType.Map:
            {
                var count = (long)reader.ReadMapHeader() * 2;
                for (var i = 0L; i < count; i++)
                {
                    Skip(ref reader, depth + 1);
                }

                break;
            }

            default:
                reader.Skip(); // a scalar, string, binary or extension: nothing nested to read
                break;
        }
    }

    /// <summary>
    /// The item with every tuple (ext 2 around an array) replaced by the array itself, so
    /// MessagePack's own formatters convert it to T[], List&lt;T&gt; or a ValueTuple.
    /// Items without extensions are returned as they are.
    /// </summary>
    private static ReadOnlyMemory<byte> WithoutTuples(ReadOnlyMemory<byte> item)
    {
        if (item.Span.IndexOfAny(ExtensionMarkers) < 0)
        {
            // No byte can start an extension: nothing to unwrap (the common, fast case).
            return item;
        }

        var output = new ArrayBufferWriter<byte>(item.Length);
        var writer = new MessagePackWriter(output);
        var reader = new MessagePackReader(item);
        try
        {
            Copy(ref reader, ref writer, 0);
        }
        catch (MessagePackSerializationException exception)
        {
            throw new KernelException("ValueError", $"malformed MessagePack item: {exception.Message}");
        }
        catch (EndOfStreamException)
        {
            throw new KernelException("ValueError", "truncated MessagePack item");
        }

        writer.Flush();
        return output.WrittenMemory;
    }

    // fixext 1/2/4/8/16, ext 8/16/32: a conservative pre-check (these bytes may also occur
    // inside other values, which only costs the full rewrite).
    private static readonly SearchValues<byte> ExtensionMarkers = SearchValues.Create([0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9]);

    private static void Copy(ref MessagePackReader reader, ref MessagePackWriter writer, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new KernelException("ValueError", $"arguments nested deeper than {MaxDepth} levels");
        }

        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Array:
            {
                var count = reader.ReadArrayHeader();
                writer.WriteArrayHeader(count);
                for (var i = 0; i < count; i++)
                {
                    Copy(ref reader, ref writer, depth + 1);
                }

                break;
            }

            case MessagePackType.Map:
            {
                var count = reader.ReadMapHeader();
                writer.WriteMapHeader(count);
                for (var i = 0; i < count * 2; i++)
                {
                    Copy(ref reader, ref writer, depth + 1);
                }

                break;
            }

            case MessagePackType.Extension:
            {
                var header = reader.ReadExtensionFormatHeader();
                var body = reader.ReadRaw(header.Length);
                switch (header.TypeCode)
                {
                    case Payload.Tuple:
                        var inner = new MessagePackReader(body);
                        Copy(ref inner, ref writer, depth + 1);
                        break;
                    case Payload.Pickle:
                        throw new KernelException("TypeError", "a C# kernel cannot take a pickled Python object (MessagePack ext 1); pass plain data");
                    default:
                        writer.WriteExtensionFormatHeader(header);
                        writer.WriteRaw(body);
                        break;
                }

                break;
            }

            default:
                writer.WriteRaw(reader.ReadRaw());
                break;
        }
    }
}

/// <summary>The MessagePack extension types of the payload rules (README "Payloads").</summary>
internal static class Payload
{
    /// <summary>A pickle (protocol 5): a Python-only object.</summary>
    public const sbyte Pickle = 1;

    /// <summary>A tuple: the body is a MessagePack array.</summary>
    public const sbyte Tuple = 2;
}
