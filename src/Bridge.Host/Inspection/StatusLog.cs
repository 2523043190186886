namespace Bridge.Host.Inspection;

// Event ids 100-119 are this area's (Hosting/Log.cs and Bridge.Core's Log use lower ones).
internal static partial class StatusLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Host status: {Count} object(s) did not answer within {DeadlineMs:F0} ms, e.g. {Family} '{Name}'")]
    public static partial void ObjectsUnanswered(ILogger logger, int count, double deadlineMs, Core.Objects.ObjectFamily family, string name);
}
