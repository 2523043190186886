using System.Diagnostics;
using System.Globalization;

namespace Bridge.Host.Execution;

/// <summary>
/// Whether starting a worker now would take CPU from work that is running, read from the
/// kernel's counters (/proc/stat, and the taken worker's CPU time). Starting a worker costs a few hundred
/// ms of CPU (.NET, CPython, imports); while the pool that just took workers keeps every
/// core busy, that time would come out of its tasks (measured on 2 cores: a warm pool's
/// 100k-item map 8–20 ms alone, 30–45 ms while two replacement workers started).
/// </summary>
internal sealed class SpareCpu
{
    private const string StatPath = "/proc/stat";

    // Judged over slices this long: a program's short pauses between bursts of work (a
    // loop of maps, each waiting for its results) are not spare CPU; longer delays a
    // start the machine could afford.
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(300);

    // A worker using less than this share of a core over a slice is not computing (it
    // waits for tasks, or its task sleeps or waits on I/O: ~0). Measured on 2 cores: a
    // pool's workers in a loop of 100k-item maps use 0.2-0.67 of a core each (the caller
    // and the host take the rest), so half a core let replacements in mid-loop.
    private const double BusyWorker = 0.1;

    /// <summary>
    /// Waits until starting a worker takes nothing from running work: at least
    /// <paramref name="cores"/> cores' worth of CPU went unused over one slice, or the
    /// <paramref name="worker"/> (the one just taken, whose work a start would slow) was
    /// not computing over it; or until <paramref name="limit"/> has passed. True when spare
    /// CPU was seen (or cannot be measured here), false at the limit.
    /// </summary>
    public async Task<bool> WaitAsync(Process worker, double cores, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (ReadMachine() is not { } before || CpuTime(worker) is not { } workerBefore)
        {
            return true; // unmeasurable here, or the worker is gone: nothing to slow down
        }

        var started = TimeProvider.System.GetTimestamp();
        var sliceStart = started;
        while (TimeProvider.System.GetElapsedTime(started) < limit)
        {
            await Task.Delay(Slice, cancellationToken);
            if (ReadMachine() is not { } now || CpuTime(worker) is not { } workerNow)
            {
                return true;
            }

            var workerCores = (workerNow - workerBefore) / TimeProvider.System.GetElapsedTime(sliceStart);
            if (now.IdleCoresSince(before) >= cores || workerCores < BusyWorker)
            {
                return true;
            }

            before = now;
            workerBefore = workerNow;
            sliceStart = TimeProvider.System.GetTimestamp();
        }

        return false;
    }

    private static CpuTimes? ReadMachine()
    {
        try
        {
            using var reader = new StreamReader(StatPath);
            return CpuTimes.Parse(reader.ReadLine());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static TimeSpan? CpuTime(Process process)
    {
        try
        {
            return process.TotalProcessorTime;
        }
        catch (InvalidOperationException)
        {
            return null; // it exited
        }
    }
}

/// <summary>The machine's CPU time counters: all of it and the idle part, in clock ticks.</summary>
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

        var ticks = new long[Math.Min(fields.Length, 9)];
        for (var i = 1; i < ticks.Length; i++)
        {
            if (!long.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out ticks[i]))
            {
                return null;
            }
        }

        return new CpuTimes(ticks.Sum(), ticks[4] + ticks[5]);
    }

    /// <summary>How many cores were idle on average between <paramref name="earlier"/> and these counts.</summary>
    public double IdleCoresSince(CpuTimes earlier)
    {
        var total = Total - earlier.Total;
        return total <= 0 ? 0 : (double)(Idle - earlier.Idle) / total * Environment.ProcessorCount;
    }
}
