using Microsoft.Extensions.Logging;

namespace Bridge.Worker.Hosting;

internal static partial class Log
{
    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Assigned to pool {PoolId} (process mode: {ProcessMode}) in {Milliseconds:F0} ms")]
    public static partial void Assigned(ILogger logger, string poolId, bool processMode, double milliseconds);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "The assignment failed; exiting")]
    public static partial void AssignmentFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Lost the host ({Reason}); exiting")]
    public static partial void HostLost(ILogger logger, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Unexpected command {Command}: {Reason}")]
    public static partial void UnexpectedCommand(ILogger logger, string command, string reason);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Shutting down after the running chunks")]
    public static partial void ShuttingDown(ILogger logger);

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "SIGTERM: exiting now")]
    public static partial void Terminated(ILogger logger);

    [LoggerMessage(EventId = 9, Level = LogLevel.Information, Message = "Process finished with exit code {ExitCode}")]
    public static partial void ProcessFinished(ILogger logger, int exitCode);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "The chunk runner failed outside user code")]
    public static partial void ChunkRunnerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 13, Level = LogLevel.Warning, Message = "Python's atexit handlers did not finish within {Seconds} s; exiting anyway")]
    public static partial void ExitHandlersTimedOut(ILogger logger, double seconds);

    [LoggerMessage(EventId = 15, Level = LogLevel.Error, Message = "Bridge.Worker: {Reason}. {Usage}")]
    public static partial void InvalidCommandLine(ILogger logger, string reason, string usage);

    [LoggerMessage(EventId = 14, Level = LogLevel.Information, Message = "Released by its pool; waiting for the next assignment")]
    public static partial void Released(ILogger logger);


    [LoggerMessage(EventId = 16, Level = LogLevel.Warning, Message = "The data socket failed: {Reason}")]
    public static partial void DataChannelFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 17, Level = LogLevel.Warning, Message = "Refused a data connection without the token of this worker's assignment")]
    public static partial void DataConnectionRefused(ILogger logger);

    [LoggerMessage(EventId = 18, Level = LogLevel.Information, Message = "Terminated by its pool while running {Chunks} chunk(s): exiting now")]
    public static partial void TerminatedByPool(ILogger logger, int chunks);
}
