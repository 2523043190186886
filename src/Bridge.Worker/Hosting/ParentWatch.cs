using System.Runtime.InteropServices;

namespace Bridge.Worker.Hosting;

/// <summary>
/// Notices that the process that started this worker (the host) has died: Linux
/// re-parents an orphan, so getppid() changes. A worker must never outlive its host, even
/// when the host dies too abruptly to close the Work stream. (PR_SET_PDEATHSIG is not
/// used: it fires when the parent's launching thread exits, and .NET starts processes
/// from thread-pool threads that come and go.)
/// </summary>
internal static partial class ParentWatch
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    /// <summary>Completes when the parent process has gone.</summary>
    public static async Task WaitForParentExitAsync(CancellationToken cancellationToken)
    {
        var parent = GetParentProcessId();
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            if (GetParentProcessId() != parent)
            {
                return;
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "getppid")]
    private static partial int GetParentProcessId();
}
