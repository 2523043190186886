using System.Threading;
using Grpc.Core;

namespace Bridge.Client;

/// <summary>
/// The one place where the host's gRPC statuses become .NET exceptions. The host names the
/// Python exception of each failure in the trailer "bridge-exception" (README, "Errors");
/// this maps that name (else the status code) to the .NET exception closest in meaning:
/// <list type="table">
/// <listheader><term>host says</term><description>.NET exception</description></listheader>
/// <item><term>ValueError, TypeError (INVALID_ARGUMENT, RESOURCE_EXHAUSTED); FileExistsError (ALREADY_EXISTS)</term><description><see cref="ArgumentException"/></description></item>
/// <item><term>IndexError</term><description><see cref="ArgumentOutOfRangeException"/></description></item>
/// <item><term>ValueError (FAILED_PRECONDITION: released too many times, task_done too often)</term><description><see cref="InvalidOperationException"/></description></item>
/// <item><term>AssertionError (an RLock or Condition not owned by the caller)</term><description><see cref="SynchronizationLockException"/></description></item>
/// <item><term>BrokenBarrierError</term><description><see cref="BrokenBarrierException"/></description></item>
/// <item><term>FileNotFoundError (NOT_FOUND: attaching to an unknown name, a freed object)</term><description><see cref="KeyNotFoundException"/></description></item>
/// <item><term>ConnectionResetError (NOT_FOUND: the session ended)</term><description><see cref="SessionEndedException"/></description></item>
/// <item><term>ObjectLostError (DATA_LOSS)</term><description><see cref="ObjectLostException"/></description></item>
/// <item><term>TimeoutError (DEADLINE_EXCEEDED)</term><description><see cref="TimeoutException"/></description></item>
/// <item><term>UNAUTHENTICATED, PERMISSION_DENIED</term><description><see cref="UnauthorizedAccessException"/></description></item>
/// <item><term>UNAVAILABLE (no host answers)</term><description><see cref="IOException"/></description></item>
/// <item><term>CANCELLED by the caller's token</term><description><see cref="OperationCanceledException"/></description></item>
/// <item><term>anything else (RuntimeError, INTERNAL)</term><description><see cref="BridgeException"/></description></item>
/// </list>
/// The <see cref="RpcException"/> is always the inner exception.
/// </summary>
internal static class BridgeErrors
{
    public const string ExceptionTrailer = "bridge-exception";

    public static Exception Translate(RpcException error, string address, CancellationToken cancellationToken)
    {
        var message = error.Status.Detail;
        if (error.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            return new OperationCanceledException("the call was cancelled", error, cancellationToken);
        }

        if (error.StatusCode == StatusCode.Unavailable)
        {
            return new IOException($"Bridge host unavailable at {address}: {(string.IsNullOrEmpty(message) ? "no answer" : message)}", error);
        }

        var python = error.Trailers.GetValue(ExceptionTrailer);
        return (python, error.StatusCode) switch
        {
            ("ValueError", StatusCode.FailedPrecondition) => new InvalidOperationException(message, error),
            ("ValueError" or "TypeError" or "FileExistsError", _) => new ArgumentException(message, error),
            ("IndexError", _) => new ArgumentOutOfRangeException(message, error),
            ("AssertionError", _) => new SynchronizationLockException(message, error),
            ("BrokenBarrierError", _) => new BrokenBarrierException(message, error),
            ("FileNotFoundError", _) => new KeyNotFoundException(message, error),
            ("ConnectionResetError", _) => new SessionEndedException(message, error),
            ("ObjectLostError", _) => new ObjectLostException(message, error),
            ("TimeoutError", _) => new TimeoutException(message, error),
            (_, StatusCode.InvalidArgument or StatusCode.OutOfRange or StatusCode.ResourceExhausted or StatusCode.AlreadyExists) => new ArgumentException(message, error),
            (_, StatusCode.NotFound) => new KeyNotFoundException(message, error),
            (_, StatusCode.FailedPrecondition) => new InvalidOperationException(message, error),
            (_, StatusCode.DataLoss) => new ObjectLostException(message, error),
            (_, StatusCode.DeadlineExceeded) => new TimeoutException(message, error),
            (_, StatusCode.Unauthenticated or StatusCode.PermissionDenied) => new UnauthorizedAccessException(message, error),
            _ => new BridgeException($"host call failed ({error.StatusCode}): {message}", error),
        };
    }
}
