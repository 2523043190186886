namespace Bridge.Kernels;

/// <summary>Arithmetic kernels.</summary>
public static class Math
{
    /// <summary>The sum of i² for 0 &lt;= i &lt; <paramref name="n"/>, in 64-bit arithmetic.</summary>
    /// <param name="n">The exclusive bound; 0 or less gives 0.</param>
    /// <returns>0² + 1² + … + (n-1)².</returns>
    /// <exception cref="OverflowException">The sum does not fit in a long (n above about 3.04 million):
    /// checked arithmetic reports it instead of returning a wrapped, wrong number.</exception>
    public static long SumOfSquares(long n)
    {
        long sum = 0;
        checked
        {
            for (long i = 0; i < n; i++)
            {
                sum += i * i;
            }
        }

        return sum;
    }
}
