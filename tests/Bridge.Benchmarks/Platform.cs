// As Bridge.Host: Unix sockets, POSIX signals and `sleep`/`kill` child processes.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
