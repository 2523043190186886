using System.Runtime.InteropServices;

namespace Bridge.Worker.Python;

/// <summary>
/// A blocking wait for "a socket has bytes" or "someone called <see cref="Wake"/>", for
/// the interpreter's main thread (Linux: an eventfd and poll(2)). Wakes are counted by the
/// eventfd, so one that comes before the wait is not lost. It lives as long as the
/// process (one per interpreter main thread), so its descriptor is never closed.
/// </summary>
internal sealed partial class WakeableWait
{
    private const short PollIn = 0x1;
    private const int NonBlocking = 0x800; // EFD_NONBLOCK
    private const int CloseOnExec = 0x80000; // EFD_CLOEXEC
    private const int Interrupted = 4; // EINTR

    private readonly int _eventFd;

    private WakeableWait(int eventFd) => _eventFd = eventFd;

    /// <summary>A wait, or null where the platform has none (the caller keeps a reader thread).</summary>
    public static WakeableWait? TryCreate()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var fd = EventFd(0, NonBlocking | CloseOnExec);
        return fd < 0 ? null : new WakeableWait(fd);
    }

    /// <summary>Ends the current (or the next) <see cref="WaitForSocket"/> early.</summary>
    public unsafe void Wake()
    {
        ulong one = 1;
        _ = Write(_eventFd, &one, sizeof(ulong));
    }

    /// <summary>
    /// Blocks until <paramref name="socketFd"/> is readable (bytes, its end, or an error:
    /// true; also when poll itself fails) or a wake arrives (false). Pending wakes are consumed.
    /// </summary>
    public unsafe bool WaitForSocket(int socketFd)
    {
        var fds = stackalloc PollFd[2];
        fds[0] = new PollFd { Fd = _eventFd, Events = PollIn };
        fds[1] = new PollFd { Fd = socketFd, Events = PollIn };
        int ready;
        do
        {
            ready = Poll(fds, 2, -1);
        }
        while (ready < 0 && Marshal.GetLastPInvokeError() == Interrupted);

        if (ready < 0)
        {
            return true; // the socket's own read reports what is wrong with it
        }

        if (fds[0].Revents != 0)
        {
            ulong count;
            _ = Read(_eventFd, &count, sizeof(ulong));
        }

        return fds[1].Revents != 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFd(uint initialValue, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(int fd, void* buffer, nuint count);
}
