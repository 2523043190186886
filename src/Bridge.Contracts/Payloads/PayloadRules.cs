using System.Buffers.Binary;

namespace Bridge.Contracts.Payloads;

/// <summary>
/// The payload rules every party shares: a payload is exactly one well-formed MessagePack
/// value. Plain data is native MessagePack; the extension types below mark what only some
/// languages can read.
/// </summary>
public static class PayloadRules
{
    /// <summary>Extension type of a Python object pickled with protocol 5 (Python clients only).</summary>
    public const sbyte PickleExtension = 1;

    /// <summary>Extension type of a tuple: its body is a MessagePack array of the elements.</summary>
    public const sbyte TupleExtension = 2;

    /// <summary>
    /// Null when <paramref name="payload"/> is one complete MessagePack value no larger than
    /// <paramref name="maxBytes"/>; otherwise a sentence saying what is wrong.
    /// </summary>
    /// <remarks>
    /// Iterative on purpose: a recursive skip lets a payload of nested one-element arrays
    /// overflow the host's stack.
    /// </remarks>
    public static string? Check(ReadOnlySpan<byte> payload, long maxBytes)
    {
        if (payload.Length > maxBytes)
        {
            return $"payload of {payload.Length} bytes exceeds the limit of {maxBytes} bytes";
        }

        if (payload.IsEmpty)
        {
            return "payload is empty; an item must be one MessagePack value";
        }

        long pending = 1;
        var at = 0;
        while (pending > 0)
        {
            if (at >= payload.Length || pending > payload.Length - at)
            {
                return $"payload is not well-formed MessagePack: it ends inside a value ({payload.Length} bytes)";
            }

            pending--;
            var rest = payload[at..];
            var header = rest[0];
            long skip;
            long children = 0;
            switch (header)
            {
                case <= 0x7f or >= 0xe0 or 0xc0 or 0xc2 or 0xc3:
                    skip = 1;
                    break;
                case >= 0x80 and <= 0x8f:
                    skip = 1;
                    children = 2L * (header & 0x0f);
                    break;
                case >= 0x90 and <= 0x9f:
                    skip = 1;
                    children = header & 0x0f;
                    break;
                case >= 0xa0 and <= 0xbf:
                    skip = 1 + (header & 0x1f);
                    break;
                case 0xcc or 0xd0:
                    skip = 2;
                    break;
                case 0xcd or 0xd1:
                    skip = 3;
                    break;
                case 0xca or 0xce or 0xd2:
                    skip = 5;
                    break;
                case 0xcb or 0xcf or 0xd3:
                    skip = 9;
                    break;
                case 0xd4:
                    skip = 3;
                    break;
                case 0xd5:
                    skip = 4;
                    break;
                case 0xd6:
                    skip = 6;
                    break;
                case 0xd7:
                    skip = 10;
                    break;
                case 0xd8:
                    skip = 18;
                    break;
                case 0xc4 or 0xd9:
                    skip = rest.Length < 2 ? long.MaxValue : 2 + rest[1];
                    break;
                case 0xc5 or 0xda:
                    skip = rest.Length < 3 ? long.MaxValue : 3 + BinaryPrimitives.ReadUInt16BigEndian(rest[1..]);
                    break;
                case 0xc6 or 0xdb:
                    skip = rest.Length < 5 ? long.MaxValue : 5 + BinaryPrimitives.ReadUInt32BigEndian(rest[1..]);
                    break;
                case 0xc7:
                    skip = rest.Length < 3 ? long.MaxValue : 3 + rest[1];
                    break;
                case 0xc8:
                    skip = rest.Length < 4 ? long.MaxValue : 4 + BinaryPrimitives.ReadUInt16BigEndian(rest[1..]);
                    break;
                case 0xc9:
                    skip = rest.Length < 6 ? long.MaxValue : 6 + BinaryPrimitives.ReadUInt32BigEndian(rest[1..]);
                    break;
                case 0xdc:
                    skip = 3;
                    children = rest.Length < 3 ? 0 : BinaryPrimitives.ReadUInt16BigEndian(rest[1..]);
                    break;
                case 0xdd:
                    skip = 5;
                    children = rest.Length < 5 ? 0 : BinaryPrimitives.ReadUInt32BigEndian(rest[1..]);
                    break;
                case 0xde:
                    skip = 3;
                    children = rest.Length < 3 ? 0 : 2L * BinaryPrimitives.ReadUInt16BigEndian(rest[1..]);
                    break;
                case 0xdf:
                    skip = 5;
                    children = rest.Length < 5 ? 0 : 2L * BinaryPrimitives.ReadUInt32BigEndian(rest[1..]);
                    break;
                default:
                    return $"payload is not well-formed MessagePack: byte 0x{header:x2} at offset {at} is not a valid type";
            }

            if (skip > rest.Length)
            {
                return $"payload is not well-formed MessagePack: it ends inside a value ({payload.Length} bytes)";
            }

            at += (int)skip;
            pending += children;
        }

        return at == payload.Length
            ? null
            : $"payload holds more than one MessagePack value ({payload.Length - at} trailing bytes)";
    }
}
