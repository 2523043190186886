// The host serves a per-user Unix socket and relies on Unix file modes for its privacy.
[assembly: System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
