namespace Bridge.Kernels;

/// <summary>The Mandelbrot set, one image row per call (an embarrassingly parallel kernel).</summary>
public static class Mandelbrot
{
    /// <summary>
    /// Escape-time iteration counts for row <paramref name="y"/> of a
    /// <paramref name="width"/>×<paramref name="height"/> image of the view
    /// [-2, 1] × [-1.5, 1.5] (x to the right, imaginary part downwards from +1.5).
    /// </summary>
    /// <param name="y">The row, 0 &lt;= y &lt; height.</param>
    /// <param name="width">Pixels per row, &gt;= 1.</param>
    /// <param name="height">Rows in the image, &gt;= 1.</param>
    /// <param name="maxIterations">Iteration cap, &gt;= 1; points that never escape get this value.</param>
    /// <returns><paramref name="width"/> counts: the first iteration at which |z| &gt; 2, or
    /// <paramref name="maxIterations"/> for points taken to be in the set.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size or the row is out of range.</exception>
    public static int[] Row(int y, int width, int height, int maxIterations)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIterations, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(y);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(y, height);

        var counts = new int[width];
        var ci = 1.5 - (3.0 * y / height);
        for (var x = 0; x < width; x++)
        {
            var cr = -2.0 + (3.0 * x / width);
            double zr = 0, zi = 0;
            var n = 0;
            while (n < maxIterations)
            {
                var zr2 = zr * zr;
                var zi2 = zi * zi;
                if (zr2 + zi2 > 4.0)
                {
                    break;
                }

                zi = (2 * zr * zi) + ci;
                zr = zr2 - zi2 + cr;
                n++;
            }

            counts[x] = n;
        }

        return counts;
    }
}
