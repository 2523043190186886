namespace Bridge.Kernels;

/// <summary>Kernels for measuring scheduling (they occupy a kernel slot without using a CPU).</summary>
public static class Timing
{
    /// <summary>Blocks the calling kernel thread for <paramref name="seconds"/>.</summary>
    /// <param name="seconds">How long to sleep, 0 to about 24 days.</param>
    /// <returns><paramref name="seconds"/>, so a map returns its input.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="seconds"/> is negative, NaN or too large.</exception>
    public static double Sleep(double seconds)
    {
        if (!(seconds >= 0) || seconds > int.MaxValue / 1000.0)
        {
            throw new ArgumentOutOfRangeException(nameof(seconds), seconds, "must be between 0 and 2147483 seconds");
        }

        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        return seconds;
    }
}
