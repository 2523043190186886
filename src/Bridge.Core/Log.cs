using Bridge.Core.Objects;
using Microsoft.Extensions.Logging;

namespace Bridge.Core;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Debug, "{Family} '{Name}' created by session {SessionId}")]
    public static partial void ObjectCreated(ILogger logger, ObjectFamily family, string name, string sessionId);

    [LoggerMessage(2, LogLevel.Debug, "{Family} '{Name}' freed: no session references it any more")]
    public static partial void ObjectFreed(ILogger logger, ObjectFamily family, string name);

    [LoggerMessage(3, LogLevel.Information, "Session {SessionId} started: '{ClientName}' pid {Pid} ({Language}), lease {Lease}")]
    public static partial void SessionStarted(ILogger logger, string sessionId, string clientName, int pid, string language, TimeSpan lease);

    [LoggerMessage(4, LogLevel.Information, "Session {SessionId} ended ({Reason}); releasing {ObjectCount} object(s)")]
    public static partial void SessionEnding(ILogger logger, string sessionId, string reason, int objectCount);

    [LoggerMessage(5, LogLevel.Warning, "Session {SessionId} ended but {Family} '{Name}' could not be told")]
    public static partial void SessionEndNotifyFailed(ILogger logger, Exception exception, string sessionId, ObjectFamily family, string name);

    [LoggerMessage(6, LogLevel.Information, "Lock '{Name}': released {Units} unit(s) held by ended session {SessionId}")]
    public static partial void LockReleasedForDeadSession(ILogger logger, string name, long units, string sessionId);

    [LoggerMessage(7, LogLevel.Information, "Queue '{Name}': {Items} item(s) leased to ended session {SessionId} went back to the head")]
    public static partial void QueueLeasesReturned(ILogger logger, string name, int items, string sessionId);

    [LoggerMessage(8, LogLevel.Information, "Barrier '{Name}' broken: session {SessionId} ended while taking part")]
    public static partial void BarrierBrokenBySession(ILogger logger, string name, string sessionId);

    [LoggerMessage(9, LogLevel.Warning, "Shared-memory file '{Path}' could not be deleted or listed")]
    public static partial void SegmentDeleteFailed(ILogger logger, Exception exception, string path);

    [LoggerMessage(10, LogLevel.Warning, "{Family} '{Name}' was lost with host {Host}: its calls now fail with ObjectLostError")]
    public static partial void ObjectLost(ILogger logger, Objects.ObjectFamily family, string name, string host);

    [LoggerMessage(11, LogLevel.Warning, "{Family} '{Name}': the object ledger failed ({Reason}); a loss of this object would read as NotFound")]
    public static partial void LedgerFailed(ILogger logger, Objects.ObjectFamily family, string name, string reason);
}
