using Microsoft.Extensions.Logging;

namespace Bridge.Worker.Hosting;

/// <summary>
/// The worker's own log: one line per entry on the process's real stderr, which the host
/// reads and logs. It holds the stderr stream it was created with, so it keeps writing
/// there after Console.Error is redirected to the client's terminal (kernel output).
/// </summary>
internal sealed class StderrLogger(TextWriter stderr, LogLevel minimum) : ILogger
{
    private readonly TextWriter _stderr = TextWriter.Synchronized(stderr);

    /// <summary>A logger on a fresh handle to fd 2; the level comes from GILBRIDGE_WORKER_LOG_LEVEL (default Information).</summary>
    public static StderrLogger Create()
    {
        var writer = new StreamWriter(Console.OpenStandardError()) { AutoFlush = true };
        var level = Enum.TryParse<LogLevel>(Environment.GetEnvironmentVariable("GILBRIDGE_WORKER_LOG_LEVEL"), ignoreCase: true, out var parsed)
            ? parsed
            : LogLevel.Information;
        return new StderrLogger(writer, level);
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        if (!IsEnabled(logLevel))
        {
            return;
        }

        var line = $"bridge-worker[{Environment.ProcessId}] {Abbreviation(logLevel)}: {formatter(state, exception)}";
        _stderr.WriteLine(exception is null ? line : line + Environment.NewLine + exception);
    }

    private static string Abbreviation(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        _ => "crit",
    };
}
