using Grpc.Core;

namespace Bridge.Client;

/// <summary>
/// A failure of the Bridge host that maps to no more specific .NET exception (the Python
/// client's <c>BridgeError</c>), and the base of Bridge's own exceptions. The host's gRPC
/// error is the <see cref="Exception.InnerException"/> when there was one.
/// </summary>
public class BridgeException : Exception
{
    /// <summary>A failure described by <paramref name="message"/>.</summary>
    public BridgeException(string message)
        : base(message)
    {
    }

    /// <summary>A failure described by <paramref name="message"/>, caused by <paramref name="innerException"/>.</summary>
    public BridgeException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The gRPC status the host answered with (<see cref="StatusCode.OK"/> when the failure did not come from a call).</summary>
    public StatusCode StatusCode => (InnerException as RpcException)?.StatusCode ?? StatusCode.OK;

    /// <summary>The Python exception a Python client raises for the same failure (the host's <c>bridge-exception</c> trailer), if any.</summary>
    public string? PythonException => (InnerException as RpcException)?.Trailers.GetValue(BridgeErrors.ExceptionTrailer);
}

/// <summary>
/// A barrier is or became broken while waiting: it was aborted or reset, a party timed out,
/// or a barrier action failed (Python's <c>threading.BrokenBarrierError</c>).
/// </summary>
public sealed class BrokenBarrierException : BridgeException
{
    /// <summary>A broken barrier described by <paramref name="message"/>.</summary>
    public BrokenBarrierException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// This session has ended on the host (its lease lapsed, or it said goodbye): what it held
/// was released. Open a new <see cref="BridgeSession"/>. (Python's client raises
/// <c>ConnectionResetError</c> and opens a new session by itself.)
/// </summary>
public sealed class SessionEndedException : BridgeException
{
    /// <summary>An ended session described by <paramref name="message"/>.</summary>
    public SessionEndedException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The object was lost with the cluster host that held it (gRPC <c>DATA_LOSS</c>, Python's
/// <c>gilbridge.ObjectLostError</c>). Creating the name again makes a new, empty object.
/// </summary>
public sealed class ObjectLostException : BridgeException
{
    /// <summary>A lost object described by <paramref name="message"/>.</summary>
    public ObjectLostException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// A task of a <see cref="BridgePool"/> failed in its worker: the remote exception's type,
/// message and stack trace (or Python traceback).
/// </summary>
public class PoolTaskException : BridgeException
{
    /// <summary>A failed task.</summary>
    /// <param name="remoteType">The remote exception's type: "System.ArgumentException", "ZeroDivisionError".</param>
    /// <param name="message">The remote exception's message.</param>
    /// <param name="remoteTrace">The remote stack trace (.NET) or traceback (Python), as text.</param>
    public PoolTaskException(string remoteType, string message, string remoteTrace)
        : base(string.IsNullOrEmpty(remoteType) ? message : $"{remoteType}: {message}")
    {
        RemoteType = remoteType;
        RemoteTrace = remoteTrace;
    }

    /// <summary>The remote exception's type: a .NET type's full name for a kernel, a Python class name for a Python callable.</summary>
    public string RemoteType { get; }

    /// <summary>The remote stack trace (.NET) or traceback (Python), as text; empty when none came.</summary>
    public string RemoteTrace { get; }
}

/// <summary>
/// The worker running the task died (a crash, a signal, <c>os._exit</c>), or the pool was
/// terminated before the task finished (Python's <c>BrokenProcessPool</c>).
/// </summary>
public sealed class BrokenPoolException : PoolTaskException
{
    /// <summary>A task lost with its worker or its pool.</summary>
    public BrokenPoolException(string message)
        : base("", message, "")
    {
    }
}
