namespace Bridge.Core.Objects;

/// <summary>Element sizes of the C types a shared value may hold (64-bit Linux).</summary>
public static class Typecodes
{
    public static int ItemSize(string typecode) => typecode switch
    {
        "c" or "b" or "B" or "?" => 1,
        "h" or "H" => 2,
        "i" or "I" or "f" or "u" => 4,
        "l" or "L" or "q" or "Q" or "d" => 8,
        _ => throw BridgeException.WrongType($"unknown typecode {Describe(typecode)}: use one of c b B ? h H i I l L q Q f d u"),
    };

    /// <summary>
    /// A typecode that is not one, as a refusal shows it: quoted when it is one printable
    /// ASCII character, else by length or code point (never echoing a control character or
    /// a long string back to a client's log).
    /// </summary>
    private static string Describe(string typecode) => typecode.Length switch
    {
        0 => "'' (empty)",
        1 when typecode[0] is >= ' ' and <= '~' => $"'{typecode}'",
        1 => $"U+{(int)typecode[0]:X4}",
        _ => $"of {typecode.Length} characters (a typecode is one)",
    };

    /// <summary>
    /// Whether elements of two known typecodes are the same C type in a value's memory:
    /// the same kind (signed, unsigned, floating point; char, bool and wchar_t each their
    /// own) and the same <see cref="ItemSize"/>. So 'l' and 'q' (C long and long long, a
    /// C# long) are one type here, 'L' and 'Q' another, while 'i' and 'l' differ in size.
    /// </summary>
    public static bool SameElements(string a, string b) =>
        a == b || (ItemSize(a) == ItemSize(b) && KindOf(a) == KindOf(b));

    private enum ElementKind
    {
        Signed,
        Unsigned,
        Floating,
        Char,
        Bool,
        WideChar,
    }

    // Only for typecodes ItemSize knows.
    private static ElementKind KindOf(string typecode) => typecode switch
    {
        "b" or "h" or "i" or "l" or "q" => ElementKind.Signed,
        "B" or "H" or "I" or "L" or "Q" => ElementKind.Unsigned,
        "f" or "d" => ElementKind.Floating,
        "c" => ElementKind.Char,
        "?" => ElementKind.Bool,
        _ => ElementKind.WideChar,
    };
}
