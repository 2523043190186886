using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>The C typecodes of values.proto for .NET element types.</summary>
internal static class ValueTypes
{
    /// <summary>The typecode a new value of <typeparamref name="T"/> is created with.</summary>
    public static string Typecode<T>()
        where T : unmanaged => Accepted<T>()[0];

    /// <summary>ArgumentException when a value's elements are not <typeparamref name="T"/>.</summary>
    public static void Check<T>(ValueInfo info)
        where T : unmanaged
    {
        if (!Accepted<T>().Contains(info.Typecode, StringComparer.Ordinal))
        {
            throw new ArgumentException($"the value '{info.Name}' holds '{info.Typecode}' elements ({info.ItemSize} bytes), which are not {typeof(T).Name}");
        }
    }

    // Same size and meaning: Python's 'l'/'L' (C long) are 8 bytes on 64-bit Linux, 'c' is a byte.
    private static string[] Accepted<T>()
        where T : unmanaged => default(T) switch
        {
            sbyte => ["b"],
            byte => ["B", "c"],
            short => ["h"],
            ushort => ["H"],
            int => ["i"],
            uint => ["I"],
            long => ["q", "l"],
            ulong => ["Q", "L"],
            float => ["f"],
            double => ["d"],
            bool => ["?"],
            _ => throw new NotSupportedException(
                $"{typeof(T).Name} has no C typecode: use sbyte, byte, short, ushort, int, uint, long, ulong, float, double or bool"),
        };
}
