using System.Diagnostics;
using Bridge.Host.Execution;

namespace Bridge.Host.Tests;

/// <summary>The gate that holds replacement workers back while the machine's cores are busy.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SpareCpuTests
{
    [Fact(Timeout = 30000)]
    public Task The_summary_line_of_proc_stat_counts_idle_and_iowait_as_idle()
    {
        // user nice system idle iowait irq softirq steal guest guest_nice
        var times = CpuTimes.Parse("cpu  100 5 50 800 20 3 2 0 40 0") ?? throw new InvalidOperationException("not parsed");
        Assert.Equal(new CpuTimes(980, 820), times);

        Assert.Null(CpuTimes.Parse("cpu0 100 5 50 800 20 3 2 0 40 0"));
        Assert.Null(CpuTimes.Parse("intr 1 2 3"));
        Assert.Null(CpuTimes.Parse("cpu  1 2 x 4 5"));
        Assert.Null(CpuTimes.Parse("cpu  1 2 3"));
        Assert.Null(CpuTimes.Parse(null));

        var later = new CpuTimes(980 + 200, 820 + 50);
        Assert.Equal(0.25 * Environment.ProcessorCount, later.IdleCoresSince(times), precision: 6);
        Assert.Equal(0, times.IdleCoresSince(times));

        return Task.CompletedTask; // a Task: xunit times out only asynchronous tests
    }

    [Fact(Timeout = 60000)]
    public async Task While_every_core_and_the_taken_worker_are_busy_there_is_no_spare_CPU_until_the_limit()
    {
        // The taken "worker" is this process, spinning on every core.
        using var stop = new CancellationTokenSource();
        var spinners = Enumerable.Range(0, Environment.ProcessorCount)
            .Select(_ => Task.Factory.StartNew(
                () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        Thread.SpinWait(1000);
                    }
                },
                CancellationToken.None,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default))
            .ToArray();
        try
        {
            using var self = Process.GetCurrentProcess();
            var started = DateTime.UtcNow;
            Assert.False(await new SpareCpu().WaitAsync(self, 0.5, TimeSpan.FromSeconds(1.5), CancellationToken.None));
            Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromSeconds(1.4), TimeSpan.FromSeconds(20));

            // The same busy machine, but the taken worker waits (a task sleeping): a start
            // takes nothing from it.
            using var sleeper = Process.Start("sleep", "30");
            try
            {
                Assert.True(await new SpareCpu().WaitAsync(sleeper, 0.5, TimeSpan.FromSeconds(10), CancellationToken.None));
            }
            finally
            {
                sleeper.Kill();
                await sleeper.WaitForExitAsync();
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(spinners);
        }
    }
}
