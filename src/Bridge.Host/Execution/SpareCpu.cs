using System.Globalization;

namespace Bridge.Host.Execution;

/// <summary>
/// Whether the machine has CPU to spare, read from the kernel's counters (/proc/stat).
/// Starting a worker costs a few hundred ms of CPU (.NET, CPython, imports); while the
/// pools already running keep every core busy, that time would be taken from their tasks
/// (measured on 2 cores: a warm pool's 100k-item map 13 ms alone, 30-40 ms while two
/// replacement workers started).
/// </summary>
internal sealed class SpareCpu
{
    private const string StatPath = "/proc/stat";

    // Idleness is judged over slices this long: a program's short pauses between bursts
    // of work (a loop of maps, each waiting for its results) are not spare CPU; longer
    // delays a start the machine could afford.
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// Waits until at least <paramref name="cores"/> cores' worth of CPU went unused over
    /// one slice, or <paramref name="limit"/> has passed: true when spare CPU was seen (or
    /// cannot be measured here), false at the limit.
    /// </summary>
    public async Task<bool> WaitAsync(double cores, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (Read() is not { } before)
        {
            return true;
        }

        var started = TimeProvider.System.GetTimestamp();
        while (TimeProvider.System.GetElapsedTime(started) < limit)
        {
            await Task.Delay(Slice, cancellationToken);
            if (Read() is not { } now)
            {
                return true;
            }

            if (now.IdleCoresSince(before) >= cores)
            {
                return true;
            }

            before = now;
        }

        return false;
    }

    private static CpuTimes? Read()
    {
        try
        {
            using var reader = new StreamReader(StatPath);
            return CpuTimes.Parse(reader.ReadLine());
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>The machine's CPU time counters: all of it and the idle part, in ticks.</summary>
internal readonly record struct CpuTimes(long Total, long Idle)
{
    /// <summary>
    /// The "cpu" summary line of /proc/stat ("cpu user nice system idle iowait irq softirq
    /// steal ..."); null for anything else. Idle counts iowait too; guest time is already
    /// inside user and nice, so only the first eight fields add up to the total.
    /// </summary>
    public static CpuTimes? Parse(string? line)
    {
        if (line is null || !line.StartsWith("cpu ", StringComparison.Ordinal))
        {
            return null;
        }

        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 6)
        {
            return null;
        }

        long total = 0;
        for (var i = 1; i < Math.Min(fields.Length, 9); i++)
        {
            if (!long.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks))
            {
                return null;
            }

            total += ticks;
        }

        var idle = long.Parse(fields[4], CultureInfo.InvariantCulture) + long.Parse(fields[5], CultureInfo.InvariantCulture);
        return new CpuTimes(total, idle);
    }

    /// <summary>How many cores were idle on average between <paramref name="earlier"/> and these counts.</summary>
    public double IdleCoresSince(CpuTimes earlier)
    {
        var total = Total - earlier.Total;
        return total <= 0 ? 0 : (double)(Idle - earlier.Idle) / total * Environment.ProcessorCount;
    }
}
