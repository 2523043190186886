using System.Runtime.InteropServices;

namespace Bridge.Host.Execution;

/// <summary>POSIX signals for worker processes (Process.terminate / kill semantics).</summary>
internal static partial class Signals
{
    public const int Terminate = 15;
    public const int Kill = 9;

    /// <summary>False when the process no longer exists.</summary>
    public static bool Send(int pid, int signal) => NativeKill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int NativeKill(int pid, int signal);
}
