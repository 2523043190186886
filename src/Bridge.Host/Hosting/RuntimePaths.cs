using System.Runtime.InteropServices;

namespace Bridge.Host.Hosting;

/// <summary>
/// The per-user runtime directory, by the same rules as the Python client: env
/// GILBRIDGE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/gilbridge, else /tmp/gilbridge-&lt;uid&gt;.
/// </summary>
internal static partial class RuntimePaths
{
    public static string DefaultDirectory()
    {
        var explicitDir = Environment.GetEnvironmentVariable("GILBRIDGE_RUNTIME_DIR");
        if (!string.IsNullOrEmpty(explicitDir))
        {
            return Path.GetFullPath(explicitDir);
        }

        var xdg = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return !string.IsNullOrEmpty(xdg)
            ? Path.Combine(xdg, "gilbridge")
            : Path.Combine(Path.GetTempPath(), $"gilbridge-{GetUid()}");
    }

    public static string DefaultSocketPath() => Path.Combine(DefaultDirectory(), "host.sock");

    /// <summary>
    /// The .NET installation this host runs on (DOTNET_ROOT when set), where a Python
    /// worker's hostfxr comes from: three levels above shared/Microsoft.NETCore.App/&lt;version&gt;.
    /// </summary>
    public static string DotnetRoot()
    {
        var configured = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(configured))
        {
            return configured;
        }

        var runtime = new DirectoryInfo(Path.TrimEndingDirectorySeparator(RuntimeEnvironment.GetRuntimeDirectory()));
        return runtime.Parent?.Parent?.Parent?.FullName ?? runtime.FullName;
    }

    /// <summary>Creates the socket's directory private to the user (0700) and removes a stale socket file.</summary>
    public static void PrepareSocketDirectory(string socketPath)
    {
        var directory = Path.GetDirectoryName(socketPath)!;
        Directory.CreateDirectory(directory);
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (File.Exists(socketPath))
        {
            File.Delete(socketPath);
        }
    }

    public static void RestrictSocket(string socketPath) =>
        File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);

    [LibraryImport("libc", EntryPoint = "getuid")]
    private static partial uint GetUid();
}
