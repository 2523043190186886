using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;

namespace Bridge.Host.Services;

/// <summary>
/// A request body that does not parse as its message answers INVALID_ARGUMENT naming the
/// method and the parser's reason. grpc-dotnet parses a unary or server-streaming request
/// before any interceptor runs and turns a parser exception into UNKNOWN ("Exception was
/// thrown by handler") logged as an error; an <see cref="RpcException"/> thrown by the
/// request marshaller instead becomes the call's status (HttpContextServerCallContext
/// .ProcessHandlerError). So every method is bound with its request marshaller guarded.
/// </summary>
internal static partial class MalformedRequests
{
    // Event ids 120-129 are this area's (Hosting/Log.cs uses 1-99, Inspection 100-119).
    [LoggerMessage(EventId = 120, Level = LogLevel.Debug, Message = "Refused a request to {Method} that could not be parsed: {Reason}")]
    private static partial void Refused(ILogger logger, string method, string reason);

    /// <summary>
    /// Binds services through <see cref="GuardedServiceMethodProvider{TService}"/> in place of
    /// grpc-dotnet's own binder-based provider. Call after AddGrpc (a later AddGrpc would add
    /// the default provider again and every method would be bound twice).
    /// </summary>
    public static IServiceCollection AddMalformedRequestStatus(this IServiceCollection services)
    {
        var defaultProvider = services.SingleOrDefault(d =>
            d.ServiceType == typeof(IServiceMethodProvider<>)
            && d.ImplementationType is { IsGenericTypeDefinition: true } type
            && type.Assembly == typeof(IServiceMethodProvider<>).Assembly
            && type.Name == "BinderServiceMethodProvider`1")
            ?? throw new InvalidOperationException("grpc-dotnet's BinderServiceMethodProvider<> is not registered: call AddGrpc first (or grpc-dotnet changed)");

        // Same place in the list: providers run in registration order.
        services[services.IndexOf(defaultProvider)] = ServiceDescriptor.Singleton(typeof(IServiceMethodProvider<>), typeof(GuardedServiceMethodProvider<>));
        return services;
    }

    /// <summary><paramref name="method"/> with a request deserializer that answers INVALID_ARGUMENT when the body does not parse.</summary>
    internal static Method<TRequest, TResponse> Guarded<TRequest, TResponse>(Method<TRequest, TResponse> method, ILogger logger)
    {
        var parse = method.RequestMarshaller.ContextualDeserializer;
        var guarded = new Marshaller<TRequest>(method.RequestMarshaller.ContextualSerializer, context =>
        {
            try
            {
                return parse(context);
            }
            catch (Exception ex) when (ex is not (RpcException or OperationCanceledException or OutOfMemoryException))
            {
                // The deserializer only parses the request's bytes (Google.Protobuf throws
                // InvalidProtocolBufferException for a cut field, a bad tag, a string that is
                // not UTF-8), so whatever it throws is the request's fault. The client is told
                // why; the host logs it quietly so a broken client cannot flood the log.
                Refused(logger, method.FullName, ex.Message);
                var message = $"the request to {method.FullName} could not be parsed: {ex.Message}";
                throw new RpcException(
                    new Status(StatusCode.InvalidArgument, message),
                    new Metadata { { BridgeCallInterceptor.ExceptionTrailer, "ValueError" } },
                    message);
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, guarded, method.ResponseMarshaller);
    }
}

/// <summary>
/// grpc-dotnet's BinderServiceMethodProvider and ProviderServiceBinder (2.85) over public
/// API: the generated static BindService named by [BindServiceMethod] is invoked with a
/// binder, and each method is added with TService's override of the base method as its
/// invoker and the same endpoint metadata, but with its request marshaller guarded. It
/// binds the health and reflection services too.
/// </summary>
internal sealed class GuardedServiceMethodProvider<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.All)] TService>(ILoggerFactory loggerFactory)
    : IServiceMethodProvider<TService>
    where TService : class
{
    private readonly ILogger _logger = loggerFactory.CreateLogger(typeof(MalformedRequests));

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<TService> context)
    {
        // A type without the attribute (e.g. the marker of a ServerServiceDefinition) binds
        // nothing here, as with grpc-dotnet's provider. The attribute is inherited from the
        // generated base, whose BindService takes that base: its parameter names the type
        // whose virtual methods the service overrides.
        if (typeof(TService).GetCustomAttribute<BindServiceMethodAttribute>(inherit: true) is { } bind)
        {
            var bindMethod = bind.BindType.GetMethod(bind.BindMethodName, BindingFlags.Public | BindingFlags.Static, [typeof(ServiceBinderBase), typeof(TService)])
                ?? throw new InvalidOperationException($"{bind.BindType}.{bind.BindMethodName}(ServiceBinderBase, {typeof(TService).Name}) not found");
            var serviceBase = bindMethod.GetParameters()[1].ParameterType;
            bindMethod.Invoke(null, [new Binder(context, serviceBase, _logger), null]);
        }
    }

    private sealed class Binder(ServiceMethodProviderContext<TService> context, Type serviceBase, ILogger logger) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Invoker<UnaryServerMethod<TService, TRequest, TResponse>>(method.Name, typeof(TRequest), typeof(ServerCallContext));
            context.AddUnaryMethod(MalformedRequests.Guarded(method, logger), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Invoker<ServerStreamingServerMethod<TService, TRequest, TResponse>>(
                method.Name, typeof(TRequest), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext));
            context.AddServerStreamingMethod(MalformedRequests.Guarded(method, logger), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Invoker<ClientStreamingServerMethod<TService, TRequest, TResponse>>(
                method.Name, typeof(IAsyncStreamReader<TRequest>), typeof(ServerCallContext));
            context.AddClientStreamingMethod(MalformedRequests.Guarded(method, logger), metadata, invoker);
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            var (invoker, metadata) = Invoker<DuplexStreamingServerMethod<TService, TRequest, TResponse>>(
                method.Name, typeof(IAsyncStreamReader<TRequest>), typeof(IServerStreamWriter<TResponse>), typeof(ServerCallContext));
            context.AddDuplexStreamingMethod(MalformedRequests.Guarded(method, logger), metadata, invoker);
        }

        /// <summary>
        /// An open delegate to the service's implementation of <paramref name="name"/>: the
        /// public virtual method whose base definition is on the generated base (a method
        /// hiding it with 'new' is skipped), and the service's and the method's attributes
        /// followed by POST (with CORS preflight), as grpc-dotnet's binder gives them.
        /// </summary>
        private (TDelegate Invoker, List<object> Metadata) Invoker<TDelegate>(string name, params Type[] parameters)
            where TDelegate : Delegate
        {
            for (var type = typeof(TService); type is not null; type = type.BaseType)
            {
                var candidate = type.GetMethod(name, BindingFlags.Public | BindingFlags.Instance, parameters);
                if (candidate is null)
                {
                    break;
                }

                if (candidate.IsVirtual && candidate.GetBaseDefinition().DeclaringType == serviceBase)
                {
                    List<object> metadata = [.. typeof(TService).GetCustomAttributes(inherit: true), .. candidate.GetCustomAttributes(inherit: true)];
                    metadata.Add(new HttpMethodMetadata(["POST"], acceptCorsPreflight: true));
                    return ((TDelegate)Delegate.CreateDelegate(typeof(TDelegate), candidate), metadata);
                }
            }

            throw new InvalidOperationException($"Could not find '{name}' on {typeof(TService)}.");
        }
    }
}
