using System.Text;
using Bridge.Kernels;

namespace Bridge.Worker.Tests;

public sealed class KernelTests
{
    [Fact(Timeout = 10_000)]
    public async Task Primes_count_matches_known_values()
    {
        await Task.Yield();
        Assert.Equal(25, Primes.Count(0, 100));
        Assert.Equal(78498, Primes.Count(0, 1_000_000));
        Assert.Equal(0, Primes.Count(0, 2));
        Assert.Equal(1, Primes.Count(2, 3));
        Assert.Equal(0, Primes.Count(100, 10));
        // Splitting a range must not change the total (segment and range edges).
        Assert.Equal(Primes.Count(0, 1_000_000), Primes.Count(0, 262_144) + Primes.Count(262_144, 777_777) + Primes.Count(777_777, 1_000_000));
        Assert.Equal(Naive(999_000, 1_001_000), Primes.Count(999_000, 1_001_000));
        // Ranges that start and end on either side of the sieve's segment edges (64 Ki numbers).
        Assert.Equal(Naive(65_000, 200_000), Primes.Count(65_000, 200_000));
        Assert.Equal(Naive(131_070, 131_075), Primes.Count(131_070, 131_075));
        Assert.Equal(Naive(3, 65_540), Primes.Count(3, 65_540));
    }

    [Fact(Timeout = 10_000)]
    public async Task Mandelbrot_row_has_the_width_and_the_expected_counts()
    {
        await Task.Yield();
        var row = Mandelbrot.Row(y: 50, width: 90, height: 101, maxIterations: 200);
        Assert.Equal(90, row.Length);
        Assert.All(row, n => Assert.InRange(n, 0, 200));
        // Row 50 of 101 is close to the real axis: x = -2 is in the set (c = -2 stays
        // bounded), x = 0 (column 60) is c ≈ 0, inside; the right edge c ≈ 1 escapes fast.
        Assert.Equal(200, row[60]);
        Assert.True(row[^1] < 5, $"c near 1 escapes quickly, got {row[^1]}");
        // The top row (imaginary part 1.5) is outside the set everywhere.
        Assert.All(Mandelbrot.Row(0, 30, 30, 100), n => Assert.True(n < 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => Mandelbrot.Row(5, 10, 5, 10));
    }

    [Fact(Timeout = 10_000)]
    public async Task Sha256_of_abc_is_the_standard_digest()
    {
        await Task.Yield();
        var digest = Hashing.Sha256(Encoding.ASCII.GetBytes("abc"));
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Convert.ToHexStringLower(digest));
    }

    [Fact(Timeout = 10_000)]
    public async Task Sum_of_squares_is_exact_and_overflow_throws()
    {
        await Task.Yield();
        Assert.Equal(0, Bridge.Kernels.Math.SumOfSquares(0));
        Assert.Equal(0 + 1 + 4 + 9, Bridge.Kernels.Math.SumOfSquares(4));
        // n(n-1)(2n-1)/6 for n = 1e6.
        Assert.Equal(333_332_833_333_500_000, Bridge.Kernels.Math.SumOfSquares(1_000_000));
        Assert.Throws<OverflowException>(() => Bridge.Kernels.Math.SumOfSquares(4_000_000));
    }

    [Fact(Timeout = 10_000)]
    public async Task Sleep_returns_its_argument_and_rejects_negative_time()
    {
        await Task.Yield();
        Assert.Equal(0.01, Timing.Sleep(0.01));
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.Sleep(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Timing.Sleep(double.NaN));
    }

    private static long Naive(long start, long stop)
    {
        long count = 0;
        for (var n = System.Math.Max(start, 2); n < stop; n++)
        {
            var prime = true;
            for (long d = 2; d * d <= n; d++)
            {
                if (n % d == 0)
                {
                    prime = false;
                    break;
                }
            }

            if (prime)
            {
                count++;
            }
        }

        return count;
    }
}
