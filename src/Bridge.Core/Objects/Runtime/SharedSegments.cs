using System.Collections.Concurrent;
using System.Globalization;
using System.IO.MemoryMappedFiles;
using Microsoft.Extensions.Logging;

namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// Files in a memory-backed folder (<c>/dev/shm</c> on Linux) that hold shared values:
/// the host maps each one, and every process on the machine may map it too and read and
/// write the value without a call. A file is named <c>gilbridge-{host pid}-{random}</c>,
/// is readable by this user only, and is deleted when its value is freed, when the host
/// stops, or, after a host was killed, by the next host that starts.
/// </summary>
internal sealed class SharedSegments : IDisposable
{
    private const string Prefix = "gilbridge-";

    private readonly ILogger<SharedSegments> _logger;
    private readonly ConcurrentDictionary<SharedSegment, byte> _live = new();
    private readonly Lazy<string> _directory;

    public SharedSegments(string directory, ILogger<SharedSegments> logger)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _logger = logger;
        // The sweep runs once, before the first segment: a host that never makes a
        // shared value never lists the folder.
        _directory = new Lazy<string>(() =>
        {
            SweepStale(directory);
            return directory;
        });
    }

    /// <summary>/dev/shm when the machine has it (memory, never written to disk), else the temp folder.</summary>
    public static string DefaultDirectory() =>
        OperatingSystem.IsLinux() && Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();

    /// <summary>A new zero-filled segment of <paramref name="size"/> bytes (at least 1).</summary>
    public SharedSegment Create(long size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var path = Path.Combine(_directory.Value, string.Create(
            CultureInfo.InvariantCulture, $"{Prefix}{Environment.ProcessId}-{Guid.NewGuid():N}"));
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.ReadWrite | FileShare.Delete,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new FileStream(path, options);
        try
        {
            file.SetLength(size);
            var map = MemoryMappedFile.CreateFromFile(file, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var segment = new SharedSegment(path, size, map, this);
            _live[segment] = 0;
            return segment;
        }
        catch
        {
            file.Dispose();
            TryDelete(path);
            throw;
        }
    }

    /// <summary>Deletes the files of every segment still live (the host is stopping).</summary>
    public void Dispose()
    {
        foreach (var segment in _live.Keys)
        {
            segment.Dispose();
        }
    }

    internal void Released(SharedSegment segment)
    {
        _live.TryRemove(segment, out _);
        TryDelete(segment.Path);
    }

    private void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SegmentDeleteFailed(_logger, ex, path);
        }
    }

    /// <summary>Deletes the segments of hosts that are no longer running (killed ones).</summary>
    private void SweepStale(string directory)
    {
        string[] files;
        try
        {
            files = Directory.GetFiles(directory, Prefix + "*");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SegmentDeleteFailed(_logger, ex, directory);
            return;
        }

        foreach (var path in files)
        {
            var name = Path.GetFileName(path).AsSpan(Prefix.Length);
            var dash = name.IndexOf('-');
            if (dash > 0
                && int.TryParse(name[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && pid != Environment.ProcessId
                && !IsRunning(pid))
            {
                TryDelete(path);
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        if (OperatingSystem.IsLinux())
        {
            return Directory.Exists($"/proc/{pid}");
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}

/// <summary>One mapped segment; disposing it unmaps it and deletes its file.</summary>
internal sealed class SharedSegment : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SharedSegments _owner;
    private int _disposed;

    internal SharedSegment(string path, long size, MemoryMappedFile map, SharedSegments owner)
    {
        Path = path;
        Size = size;
        _map = map;
        _owner = owner;
        _view = map.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
    }

    /// <summary>The file other processes map.</summary>
    public string Path { get; }

    public long Size { get; }

    /// <summary>Copies <paramref name="count"/> bytes from <paramref name="offset"/>.</summary>
    public byte[] Read(long offset, int count)
    {
        var data = new byte[count];
        _view.ReadArray(offset, data, 0, count);
        return data;
    }

    public void Write(long offset, byte[] data) => _view.WriteArray(offset, data, 0, data.Length);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _view.Dispose();
            _map.Dispose();
            _owner.Released(this);
        }
    }
}
