using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;

namespace Bridge.Worker.Kernels;

/// <summary>
/// Resolves kernel names to public static methods: "Namespace.Type.Method" in
/// Bridge.Kernels, or "/abs/path/Assembly.dll:Namespace.Type.Method" in a user assembly
/// (loaded once into its own AssemblyLoadContext). Successful look-ups are cached per
/// name, so a map's chunks resolve once; failures are not (the user may fix the dll).
/// </summary>
internal sealed class KernelCatalog(CSharpKernelCompiler compiler)
{
    /// <summary>The prefix of an inline C# kernel: "csharp:" + method name (may be empty) + "\n" + source.</summary>
    public const string CSharpPrefix = "csharp:";

    private readonly ConcurrentDictionary<string, Kernel> _kernels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Lazy<Assembly>> _assemblies = new(StringComparer.Ordinal);
    private readonly Assembly _builtIn = typeof(Bridge.Kernels.Primes).Assembly;

    /// <exception cref="KernelException">The name is malformed or names nothing callable.</exception>
    public Kernel Resolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _kernels.TryGetValue(name, out var kernel) ? kernel : _kernels.GetOrAdd(name, Load(name));
    }

    private Kernel Load(string name)
    {
        if (name.StartsWith(CSharpPrefix, StringComparison.Ordinal))
        {
            return LoadInline(name);
        }

        // The last ':' separates a path from the method (a Windows drive's ':' comes first).
        var colon = name.LastIndexOf(':');
        Assembly assembly;
        string qualified;
        if (colon < 0)
        {
            assembly = _builtIn;
            qualified = name;
        }
        else
        {
            var path = name[..colon];
            qualified = name[(colon + 1)..];
            if (!Path.IsPathFullyQualified(path))
            {
                throw new KernelException("ValueError", $"kernel '{name}': the assembly path must be absolute");
            }

            if (!File.Exists(path))
            {
                throw new KernelException("FileNotFoundError", $"kernel '{name}': no assembly at {path}");
            }

            assembly = LoadAssembly(Path.GetFullPath(path));
        }

        var dot = qualified.LastIndexOf('.');
        if (dot <= 0 || dot == qualified.Length - 1)
        {
            throw new KernelException("ValueError", $"kernel '{name}' is not of the form Namespace.Type.Method");
        }

        var typeName = qualified[..dot];
        var methodName = qualified[(dot + 1)..];
        var type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new KernelException("AttributeError", $"kernel '{name}': no type {typeName} in {assembly.GetName().Name}");
        if (!type.IsPublic && !type.IsNestedPublic)
        {
            throw new KernelException("AttributeError", $"kernel '{name}': type {typeName} is not public");
        }

        var methods = type.GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Where(m => m.Name == methodName && !m.ContainsGenericParameters)
            .ToArray();
        if (methods.Length == 0)
        {
            throw new KernelException("AttributeError", $"kernel '{name}': {typeName} has no public static method {methodName}");
        }

        EnsureSynchronous(methods, $"kernel '{name}'");
        return new Kernel(name, methods);
    }

    /// <summary>An inline C# kernel: compiled (or found compiled), then its one public static method, or the one named.</summary>
    private Kernel LoadInline(string name)
    {
        var newline = name.IndexOf('\n', StringComparison.Ordinal);
        if (newline < 0)
        {
            throw new KernelException("ValueError", "an inline C# kernel is 'csharp:' + method name + newline + source");
        }

        var wanted = name[CSharpPrefix.Length..newline].Trim();
        var declared = CSharpKernelCompiler.PublicStaticMethods(compiler.Compile(name[(newline + 1)..]));
        var names = declared.Select(method => method.Name).Distinct(StringComparer.Ordinal).ToArray();
        if (wanted.Length == 0)
        {
            wanted = names.Length switch
            {
                1 => names[0],
                0 => throw new KernelException("AttributeError", "the C# source declares no public static method to call"),
                _ => throw new KernelException("ValueError",
                    $"the C# source declares several public static methods ({string.Join(", ", names)}): name one, gilbridge.csharp(source, method=...)"),
            };
        }

        var methods = declared.Where(method => method.Name == wanted).ToArray();
        if (methods.Length == 0)
        {
            throw new KernelException("AttributeError",
                $"the C# source has no public static method {wanted} (it has: {string.Join(", ", names)})");
        }

        var declaring = methods.Select(method => method.DeclaringType!.FullName).Distinct(StringComparer.Ordinal).ToArray();
        if (declaring.Length > 1)
        {
            throw new KernelException("ValueError", $"several types of the C# source declare {wanted} ({string.Join(", ", declaring)})");
        }

        var display = $"csharp:{declaring[0]}.{wanted}";
        EnsureSynchronous(methods, display);
        return new Kernel(display, methods);
    }

    private static void EnsureSynchronous(IEnumerable<MethodInfo> methods, string display)
    {
        foreach (var method in methods)
        {
            if (typeof(Task).IsAssignableFrom(method.ReturnType) || method.ReturnType.Name.StartsWith("ValueTask", StringComparison.Ordinal))
            {
                // A kernel thread would have to block on it; kernels are synchronous by design.
                throw new KernelException("TypeError", $"{display} returns {method.ReturnType.Name}: kernels must be synchronous");
            }
        }
    }

    private Assembly LoadAssembly(string path)
    {
        // PublicationOnly, not ExecutionAndPublication: that would cache a failed load for good.
        var lazy = _assemblies.GetOrAdd(path, p => new Lazy<Assembly>(() => LoadIsolated(p), LazyThreadSafetyMode.PublicationOnly));
        return lazy.Value;
    }

    private static Assembly LoadIsolated(string path)
    {
        try
        {
            return new KernelLoadContext(path).LoadFromAssemblyPath(path);
        }
        catch (BadImageFormatException exception)
        {
            throw new KernelException("ValueError", $"{path} is not a .NET assembly: {exception.Message}");
        }
    }

    /// <summary>
    /// A user assembly's own context: its private dependencies resolve beside it, while
    /// anything the worker already has (MessagePack, Bridge.Kernels) is shared so types match.
    /// </summary>
    private sealed class KernelLoadContext(string path) : AssemblyLoadContext(name: path, isCollectible: false)
    {
        private readonly AssemblyDependencyResolver _resolver = new(path);

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            foreach (var loaded in Default.Assemblies)
            {
                if (AssemblyName.ReferenceMatchesDefinition(assemblyName, loaded.GetName()))
                {
                    return null;
                }
            }

            var resolved = _resolver.ResolveAssemblyToPath(assemblyName);
            return resolved is null ? null : LoadFromAssemblyPath(resolved);
        }
    }
}

/// <summary>A resolved kernel: its name and the public static overloads of that name.</summary>
internal sealed record Kernel(string Name, IReadOnlyList<MethodInfo> Overloads);

/// <summary>A failure to resolve or call a kernel, reported as a TaskError of <see cref="ErrorType"/>.</summary>
internal sealed class KernelException(string errorType, string message, string? details = null) : Exception(message)
{
    /// <summary>The Python exception type the client raises ("TypeError", "AttributeError", ...).</summary>
    public string ErrorType { get; } = errorType;

    /// <summary>What the TaskError's traceback carries (every compile error, say); null: type and message.</summary>
    public string? Details { get; } = details;
}
