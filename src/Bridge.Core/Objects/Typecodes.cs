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
        _ => throw BridgeException.WrongType(
            $"unknown typecode '{typecode}': use one of c b B ? h H i I l L q Q f d u"),
    };
}
