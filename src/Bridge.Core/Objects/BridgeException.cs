namespace Bridge.Core.Objects;

public enum BridgeErrorCode
{
    /// <summary>Bad argument: a name, a timeout, a typecode, a payload.</summary>
    InvalidArgument,

    /// <summary>No object of that name (attach), or the session has ended.</summary>
    NotFound,

    /// <summary>The name is taken by an object of another kind or other parameters.</summary>
    AlreadyExists,

    /// <summary>The object's state forbids the call (released too often, not the owner, broken barrier).</summary>
    FailedPrecondition,

    /// <summary>A payload over the size limit.</summary>
    ResourceExhausted,

    /// <summary>The object's state was lost with the host that held it.</summary>
    DataLoss,
}

/// <summary>
/// A domain error that crosses grain calls intact. <see cref="PythonException"/> names the
/// exception a Python client raises (ValueError, AssertionError, BrokenBarrierError, ...),
/// so the stdlib's error types survive the trip through the host.
/// </summary>
[GenerateSerializer, Alias("Bridge.BridgeException")]
public sealed class BridgeException : Exception
{
    public BridgeException()
    {
        PythonException = "RuntimeError";
    }

    public BridgeException(string message)
        : base(message)
    {
        PythonException = "RuntimeError";
    }

    public BridgeException(string message, Exception innerException)
        : base(message, innerException)
    {
        PythonException = "RuntimeError";
    }

    public BridgeException(BridgeErrorCode code, string pythonException, string message)
        : base(message)
    {
        Code = code;
        PythonException = pythonException;
    }

    [Id(0)]
    public BridgeErrorCode Code { get; init; }

    [Id(1)]
    public string PythonException { get; init; }

    public static BridgeException InvalidArgument(string message) => new(BridgeErrorCode.InvalidArgument, "ValueError", message);

    public static BridgeException WrongType(string message) => new(BridgeErrorCode.InvalidArgument, "TypeError", message);

    public static BridgeException NotFound(string message) => new(BridgeErrorCode.NotFound, "FileNotFoundError", message);

    public static BridgeException AlreadyExists(string message) => new(BridgeErrorCode.AlreadyExists, "FileExistsError", message);

    public static BridgeException Precondition(string pythonException, string message) => new(BridgeErrorCode.FailedPrecondition, pythonException, message);

    public static BridgeException TooLarge(string message) => new(BridgeErrorCode.ResourceExhausted, "ValueError", message);

    /// <summary>The object existed, and its state went with <paramref name="host"/> (see <see cref="IObjectLedger"/>).</summary>
    public static BridgeException Lost(string noun, string name, string host) =>
        new(BridgeErrorCode.DataLoss, "ObjectLostError",
            $"the {noun} named '{name}' was lost: the host that held it ({host}) is gone, and its state with it");

    public static BridgeException SessionEnded(string sessionId) =>
        new(BridgeErrorCode.NotFound, "ConnectionResetError", $"session '{sessionId}' has ended (its lease lapsed or it said goodbye); start a new session");
}
