using System.Buffers;
using System.Reflection;
using System.Runtime.CompilerServices;
using Bridge.Contracts.V1;
using Google.Protobuf;
using MessagePack;
using MessagePack.Resolvers;

namespace Bridge.Worker.Kernels;

/// <summary>
/// Runs a kernel chunk: resolves the method, converts each item's MessagePack arguments to
/// its parameter types, calls it and encodes the return value. The first failing call
/// ends the chunk with a TaskError: the .NET exception's full type name, message and
/// stack trace, or a Python-style TypeError/ValueError when the arguments do not fit.
/// Thread-safe: kernel threads share one invoker.
/// </summary>
internal sealed class KernelInvoker(KernelCatalog catalog)
{
    // Contractless: plain classes and records convert to and from maps without attributes.
    // Untrusted data: arguments come from clients, so nesting is bounded (an error, not a
    // stack overflow that would end the worker) and dictionaries and sets hash their keys
    // collision-resistantly (a map of colliding keys converts in linear time).
    private readonly MessagePackSerializerOptions _options = ContractlessStandardResolver.Options
        .WithSecurity(MessagePackSecurity.UntrustedData.WithMaximumObjectGraphDepth(KernelArguments.MaxDepth));
    private readonly int _pid = Environment.ProcessId;

    public TaskResult Run(TaskChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        var result = new TaskResult { TaskId = chunk.TaskId, WorkerPid = _pid };
        try
        {
            if (chunk.Function?.KindCase != Callable.KindOneofCase.Kernel)
            {
                throw new KernelException("TypeError", "this chunk's function is not a C# kernel");
            }

            var kernel = catalog.Resolve(chunk.Function.Kernel);
            foreach (var item in chunk.Items)
            {
                result.Values.Add(UnsafeByteOperations.UnsafeWrap(Call(kernel, chunk.Style, item.Memory)));
            }
        }
        catch (KernelException exception)
        {
            result.Values.Clear();
            result.Error = new TaskError
            {
                Type = exception.ErrorType,
                Message = exception.Message,
                Traceback = exception.Details ?? $"{exception.ErrorType}: {exception.Message}",
            };
        }
        catch (Exception exception)
        {
            // The kernel's own exception (DoNotWrapExceptions: not a TargetInvocationException).
            result.Values.Clear();
            result.Error = new TaskError
            {
                Type = exception.GetType().FullName ?? exception.GetType().Name,
                Message = exception.Message,
                Traceback = exception.ToString(),
            };
        }

        return result;
    }

    /// <summary>Calls the kernel for one item and returns the MessagePack of its result.</summary>
    public byte[] Call(Kernel kernel, CallStyle style, ReadOnlyMemory<byte> item)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var arguments = KernelArguments.Parse(style, item);
        var (method, values) = Bind(kernel, arguments);
        var returned = method.Invoke(null, BindingFlags.DoNotWrapExceptions, binder: null, values, culture: null);
        return Encode(kernel, method, returned);
    }

    private (MethodInfo Method, object?[] Values) Bind(Kernel kernel, KernelArguments arguments)
    {
        KernelException? failure = null;
        foreach (var method in kernel.Overloads)
        {
            try
            {
                return (method, BindTo(kernel, method, arguments));
            }
            catch (KernelException exception)
            {
                failure ??= exception;
            }
        }

        throw kernel.Overloads.Count == 1 || failure is null
            ? failure ?? new KernelException("TypeError", $"{kernel.Name}: no overload to call")
            : new KernelException("TypeError", $"no overload of {kernel.Name} accepts these arguments (first mismatch: {failure.Message})");
    }

    private object?[] BindTo(Kernel kernel, MethodInfo method, KernelArguments arguments)
    {
        var parameters = method.GetParameters();
        if (arguments.Positional.Count > parameters.Length)
        {
            throw new KernelException("TypeError", $"{kernel.Name}() takes {Plural(parameters.Length, "argument")} but {arguments.Positional.Count} were given");
        }

        var values = new object?[parameters.Length];
        var bound = new bool[parameters.Length];
        for (var i = 0; i < arguments.Positional.Count; i++)
        {
            values[i] = Convert(kernel, parameters[i], arguments.Positional[i]);
            bound[i] = true;
        }

        foreach (var (name, value) in arguments.Named)
        {
            var index = Array.FindIndex(parameters, p => p.Name == name);
            if (index < 0)
            {
                throw new KernelException("TypeError", $"{kernel.Name}() got an unexpected keyword argument '{name}'");
            }

            if (bound[index])
            {
                throw new KernelException("TypeError", $"{kernel.Name}() got multiple values for argument '{name}'");
            }

            values[index] = Convert(kernel, parameters[index], value);
            bound[index] = true;
        }

        for (var i = 0; i < parameters.Length; i++)
        {
            if (bound[i])
            {
                continue;
            }

            if (!parameters[i].IsOptional)
            {
                throw new KernelException("TypeError", $"{kernel.Name}() missing required argument '{parameters[i].Name}' (takes {Plural(parameters.Length, "argument")})");
            }

            values[i] = parameters[i].HasDefaultValue ? parameters[i].DefaultValue : Type.Missing;
        }

        return values;
    }

    private object? Convert(Kernel kernel, ParameterInfo parameter, ReadOnlyMemory<byte> value)
    {
        try
        {
            return MessagePackSerializer.Deserialize(parameter.ParameterType, value, _options);
        }
        catch (MessagePackSerializationException exception) when (Innermost(exception) is InsufficientExecutionStackException)
        {
            throw new KernelException(
                "ValueError", $"{kernel.Name}() argument '{parameter.Name}' is nested deeper than {KernelArguments.MaxDepth} levels");
        }
        catch (MessagePackSerializationException exception)
        {
            throw new KernelException(
                "TypeError",
                $"{kernel.Name}() argument '{parameter.Name}': cannot convert {Describe(value)} to {parameter.ParameterType.Name} ({Innermost(exception).Message})");
        }
    }

    private byte[] Encode(Kernel kernel, MethodInfo method, object? returned)
    {
        if (method.ReturnType == typeof(void) || returned is null)
        {
            return [MessagePackCode.Nil];
        }

        try
        {
            var bytes = MessagePackSerializer.Serialize(returned.GetType(), returned, _options);
            return returned is ITuple ? AsTupleExtension(bytes) : bytes;
        }
        catch (MessagePackSerializationException exception)
        {
            throw new KernelException("TypeError", $"{kernel.Name}() returned a {returned.GetType().Name}, which has no MessagePack form ({Innermost(exception).Message})");
        }
    }

    /// <summary>A returned tuple travels as ext 2 around its array, so Python gets a tuple back.</summary>
    private static byte[] AsTupleExtension(byte[] array)
    {
        var output = new ArrayBufferWriter<byte>(array.Length + 6);
        var writer = new MessagePackWriter(output);
        writer.WriteExtensionFormatHeader(new ExtensionHeader(Payload.Tuple, array.Length));
        writer.WriteRaw(array);
        writer.Flush();
        return output.WrittenSpan.ToArray();
    }

    private static string Describe(ReadOnlyMemory<byte> value)
    {
        try
        {
            var reader = new MessagePackReader(value);
            return $"a MessagePack {reader.NextMessagePackType.ToString().ToLowerInvariant()}";
        }
        catch (EndOfStreamException)
        {
            return "an empty value";
        }
    }

    private static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is not null)
        {
            exception = exception.InnerException;
        }

        return exception;
    }

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";
}
