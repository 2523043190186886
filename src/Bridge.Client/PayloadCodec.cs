using System.Buffers;
using Bridge.Contracts.Payloads;
using Google.Protobuf;
using MessagePack;
using MessagePack.Resolvers;

namespace Bridge.Client;

/// <summary>
/// Items and results as MessagePack (README, "Payloads"). A Python tuple (extension type 2)
/// reads as an array; a pickled Python object (extension type 1) cannot be read here and
/// fails with <see cref="NotSupportedException"/> naming the problem, instead of
/// MessagePack's own error about an unknown extension.
/// </summary>
internal sealed class PayloadCodec(MessagePackSerializerOptions options)
{
    // As deep as MessagePack's own limit for untrusted data.
    private const int MaxDepth = 500;

    /// <summary>
    /// Plain data and any type: attributed types ([MessagePackObject]) as they say, others
    /// by their public members (contractless), with the limits for untrusted data since
    /// items come from other processes.
    /// </summary>
    public static MessagePackSerializerOptions DefaultOptions { get; } = MessagePackSerializerOptions.Standard
        .WithResolver(ContractlessStandardResolver.Instance)
        .WithSecurity(MessagePackSecurity.UntrustedData);

    public MessagePackSerializerOptions Options { get; } = options;

    public ByteString Encode<T>(T value, CancellationToken cancellationToken) =>
        UnsafeByteOperations.UnsafeWrap(MessagePackSerializer.Serialize(value, Options, cancellationToken));

    public T Decode<T>(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var sequence = new ReadOnlySequence<byte>(payload);
        if (HasTuples(sequence, 0))
        {
            var plain = new ArrayBufferWriter<byte>(payload.Length);
            var writer = new MessagePackWriter(plain);
            var reader = new MessagePackReader(sequence);
            CopyWithoutTuples(ref reader, ref writer, 0);
            writer.Flush();
            return MessagePackSerializer.Deserialize<T>(plain.WrittenMemory, Options, cancellationToken);
        }

        return MessagePackSerializer.Deserialize<T>(payload, Options, cancellationToken);
    }

    /// <summary>Whether the value holds a tuple; throws when it holds a pickle.</summary>
    private static bool HasTuples(ReadOnlySequence<byte> payload, int depth)
    {
        var reader = new MessagePackReader(payload);
        var found = false;
        long pending = 1;
        while (pending-- > 0)
        {
            switch (reader.NextMessagePackType)
            {
                case MessagePackType.Array:
                    pending += reader.ReadArrayHeader();
                    break;
                case MessagePackType.Map:
                    pending += 2L * reader.ReadMapHeader();
                    break;
                case MessagePackType.Extension:
                    var header = reader.ReadExtensionFormatHeader();
                    var body = reader.ReadRaw(header.Length);
                    found |= CheckExtension(header.TypeCode, body, depth);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        return found;
    }

    private static bool CheckExtension(sbyte typeCode, ReadOnlySequence<byte> body, int depth)
    {
        if (typeCode == PayloadRules.PickleExtension)
        {
            throw new NotSupportedException(
                "the payload holds a Python object pickled by a Python client (MessagePack extension type 1): only Python clients can read it; send plain data (None, bool, int, float, str, bytes, list, tuple, dict) to share it with .NET");
        }

        if (typeCode != PayloadRules.TupleExtension)
        {
            return false;
        }

        if (depth >= MaxDepth)
        {
            throw new NotSupportedException($"the payload nests tuples deeper than {MaxDepth} levels");
        }

        HasTuples(body, depth + 1);
        return true;
    }

    /// <summary>Copies one value, each tuple (extension type 2) replaced by its array.</summary>
    private static void CopyWithoutTuples(ref MessagePackReader reader, ref MessagePackWriter writer, int depth)
    {
        if (depth >= MaxDepth)
        {
            throw new NotSupportedException($"the payload nests deeper than {MaxDepth} levels");
        }

        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Array:
                var count = reader.ReadArrayHeader();
                writer.WriteArrayHeader(count);
                for (var i = 0; i < count; i++)
                {
                    CopyWithoutTuples(ref reader, ref writer, depth + 1);
                }

                break;
            case MessagePackType.Map:
                var pairs = reader.ReadMapHeader();
                writer.WriteMapHeader(pairs);
                for (var i = 0; i < 2 * pairs; i++)
                {
                    CopyWithoutTuples(ref reader, ref writer, depth + 1);
                }

                break;
            case MessagePackType.Extension when reader.CreatePeekReader().ReadExtensionFormatHeader().TypeCode == PayloadRules.TupleExtension:
                var header = reader.ReadExtensionFormatHeader();
                var body = new MessagePackReader(reader.ReadRaw(header.Length));
                CopyWithoutTuples(ref body, ref writer, depth + 1);
                break;
            default:
                var start = reader.Position;
                reader.Skip();
                writer.WriteRaw(reader.Sequence.Slice(start, reader.Position));
                break;
        }
    }
}
