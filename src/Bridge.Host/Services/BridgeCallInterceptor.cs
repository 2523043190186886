using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Bridge.Core.Objects;
using Bridge.Host.Hosting;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Services;

/// <summary>
/// The one place where calls are authenticated (TCP needs the bearer token; the Unix
/// socket is private to the user) and domain errors become gRPC statuses. The trailer
/// "bridge-exception" names the Python exception a Python client raises.
/// </summary>
internal sealed class BridgeCallInterceptor(IOptions<BridgeHostOptions> options, BridgeMetrics metrics, ILogger<BridgeCallInterceptor> logger) : Interceptor
{
    public const string ExceptionTrailer = "bridge-exception";

    private readonly byte[]? _token = string.IsNullOrEmpty(options.Value.Token) ? null : Encoding.UTF8.GetBytes("Bearer " + options.Value.Token);

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
        HandleAsync(context, request, () => continuation(request, context));

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        HandleAsync(context, request, async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        HandleAsync(context, request: null, () => continuation(requestStream, context));

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        HandleAsync(context, request: null, async () =>
        {
            await continuation(requestStream, responseStream, context);
            return true;
        });

    /// <summary>
    /// Every call, whatever its kind: authenticated, its domain error translated (named by
    /// <paramref name="request"/> when it has one), and counted with its status and duration.
    /// </summary>
    private async Task<T> HandleAsync<T>(ServerCallContext context, object? request, Func<Task<T>> call)
    {
        var started = Stopwatch.GetTimestamp();
        var status = StatusCode.OK;
        try
        {
            Authenticate(context);
            return await call();
        }
        catch (RpcException ex)
        {
            status = ex.StatusCode;
            throw;
        }
        catch (Exception ex)
        {
            var translated = Translate(ex, context, request);
            status = translated.StatusCode;
            throw translated;
        }
        finally
        {
            metrics.CallEnded(context.Method, status.ToString(), started);
        }
    }

    private void Authenticate(ServerCallContext context)
    {
        var http = context.GetHttpContext();
        if (http.Connection.LocalIpAddress is null)
        {
            return;
        }

        var presented = context.RequestHeaders.GetValue("authorization");
        if (_token is null || presented is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _token))
        {
            Log.Unauthenticated(logger, http.Connection.RemoteIpAddress?.ToString());
            throw new RpcException(new Status(StatusCode.Unauthenticated, "a valid 'authorization: Bearer <token>' header is required on TCP"));
        }
    }

    private RpcException Translate(Exception exception, ServerCallContext context, object? request = null)
    {
        switch (exception)
        {
            case BridgeException bridge:
                return WithPythonException(StatusOf(bridge.Code), bridge.Message, bridge.PythonException);
            case SiloUnavailableException:
                // A call in flight to a host of the cluster that was declared dead: the
                // object it held is lost (its next call reads so from the object ledger).
                var lost = ObjectNameOf(request) is { } name ? $"the object named '{name}'" : "the object";
                return WithPythonException(
                    StatusCode.DataLoss, $"{lost} was lost: the host that held it was declared dead, and its state went with it", "ObjectLostError");
            case OperationCanceledException when context.CancellationToken.IsCancellationRequested:
                return new RpcException(new Status(StatusCode.Cancelled, "the call was cancelled by the client"));
            case TimeoutException:
                return WithPythonException(StatusCode.DeadlineExceeded, exception.Message, "TimeoutError");
            default:
                Log.UnexpectedError(logger, exception, context.Method);
                return WithPythonException(StatusCode.Internal, $"{exception.GetType().Name}: {exception.Message}", "RuntimeError");
        }
    }

    /// <summary>The object a request names (its target, or the name it opens); null for other requests.</summary>
    private static string? ObjectNameOf(object? request)
    {
        if (request is not IMessage message)
        {
            return null;
        }

        var fields = message.Descriptor.Fields;
        if (fields.InDeclarationOrder().FirstOrDefault(f => f.Name == "target")?.Accessor.GetValue(message) is Contracts.V1.ObjectRef target)
        {
            return target.Name;
        }

        return fields.InDeclarationOrder().FirstOrDefault(f => f.Name == "name" && f.FieldType == Google.Protobuf.Reflection.FieldType.String)?.Accessor.GetValue(message) as string;
    }

    private static RpcException WithPythonException(StatusCode code, string message, string pythonException) =>
        new(new Status(code, message), new Metadata { { ExceptionTrailer, pythonException } }, message);

    private static StatusCode StatusOf(BridgeErrorCode code) => code switch
    {
        BridgeErrorCode.InvalidArgument => StatusCode.InvalidArgument,
        BridgeErrorCode.NotFound => StatusCode.NotFound,
        BridgeErrorCode.AlreadyExists => StatusCode.AlreadyExists,
        BridgeErrorCode.FailedPrecondition => StatusCode.FailedPrecondition,
        BridgeErrorCode.ResourceExhausted => StatusCode.ResourceExhausted,
        BridgeErrorCode.DataLoss => StatusCode.DataLoss,
        _ => StatusCode.Unknown,
    };
}
