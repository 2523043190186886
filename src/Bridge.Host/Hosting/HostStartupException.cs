namespace Bridge.Host.Hosting;

/// <summary>A reason the host cannot start that the user can fix (not a bug).</summary>
internal sealed class HostStartupException(string message) : Exception(message);
