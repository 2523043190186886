namespace Bridge.Worker.Tests;

/// <summary>Kernels loaded from this test assembly by path, as a user's own dll would be.</summary>
public static class TestKernels
{
    public static (long Quotient, long Remainder) DivMod(long a, long b) => (a / b, a % b);

    public static double Scale(double[] values, double factor = 2) => values.Sum() * factor;

    public static int Count(List<string> words) => words.Count;

    public static int Count(Dictionary<string, long> counts) => counts.Count;

    public static Task<int> Later() => Task.FromResult(1);

    /// <summary>How many one-element arrays are nested around the innermost value.</summary>
    public static int Depth(object? value)
    {
        var depth = 0;
        while (value is object?[] { Length: 1 } array)
        {
            value = array[0];
            depth++;
        }

        return depth;
    }

    public static int Size(Dictionary<long, long> map) => map.Count;

    public static int Shout(string text)
    {
        Console.WriteLine(text);
        Console.Error.Write("partial");
        return text.Length;
    }
}
