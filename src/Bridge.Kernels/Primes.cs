namespace Bridge.Kernels;

/// <summary>Prime counting: a CPU-bound kernel that runs without the GIL.</summary>
public static class Primes
{
    /// <summary>
    /// Counts the primes p with <paramref name="start"/> &lt;= p &lt; <paramref name="stop"/>
    /// with a segmented sieve of Eratosthenes (O(n log log n), memory O(√stop + segment)).
    /// </summary>
    /// <param name="start">Inclusive lower bound; values below 2 count from 2.</param>
    /// <param name="stop">Exclusive upper bound; an empty or inverted range counts 0.</param>
    /// <returns>The number of primes in [start, stop).</returns>
    /// <example>From Python: <c>gilbridge.dotnet("Bridge.Kernels.Primes.Count")</c> mapped over
    /// <c>[(0, 1_000_000)]</c> with starmap gives <c>[78498]</c>.</example>
    public static long Count(long start, long stop)
    {
        start = System.Math.Max(start, 2);
        if (stop <= start)
        {
            return 0;
        }

        // Base primes up to √(stop - 1) cross off composites in every segment.
        var limit = (long)System.Math.Sqrt(stop - 1);
        while ((limit + 1) * (limit + 1) <= stop - 1)
        {
            limit++;
        }

        var basePrimes = SmallPrimes((int)limit);

        // 256 KiB segments stay in L2 for the inner crossing-off loop.
        const int SegmentSize = 1 << 18;
        var composite = new bool[SegmentSize];
        long count = 0;
        for (var low = start; low < stop; low += SegmentSize)
        {
            var high = System.Math.Min(low + SegmentSize, stop);
            var length = (int)(high - low);
            Array.Clear(composite, 0, length);
            foreach (var p in basePrimes)
            {
                var square = (long)p * p;
                if (square >= high)
                {
                    break;
                }

                // The first multiple of p in the segment, never p itself.
                var first = System.Math.Max(square, (low + p - 1) / p * p);
                for (var m = first - low; m < length; m += p)
                {
                    composite[m] = true;
                }
            }

            for (var i = 0; i < length; i++)
            {
                if (!composite[i])
                {
                    count++;
                }
            }
        }

        return count;
    }

    /// <summary>The primes up to and including <paramref name="limit"/> (a plain sieve).</summary>
    private static List<int> SmallPrimes(int limit)
    {
        var primes = new List<int>();
        if (limit < 2)
        {
            return primes;
        }

        var composite = new bool[limit + 1];
        for (var i = 2; i <= limit; i++)
        {
            if (composite[i])
            {
                continue;
            }

            primes.Add(i);
            for (var m = (long)i * i; m <= limit; m += i)
            {
                composite[m] = true;
            }
        }

        return primes;
    }
}
