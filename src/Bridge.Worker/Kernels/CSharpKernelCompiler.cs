using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Bridge.Worker.Kernels;

/// <summary>
/// Compiles inline C# kernels (<c>gilbridge.csharp(source)</c>) with Roslyn into an
/// assembly, once per source: cached in memory by the source's SHA-256 and on disk
/// (<see cref="CacheDirectory"/>), so other workers load the compiled assembly instead
/// of compiling again. A source with no type declaration is a list of members (methods,
/// fields, nested types): it is wrapped in <c>public static class InlineKernel</c> with
/// the usual <c>using</c>s, and diagnostics still name the user's own lines.
/// </summary>
internal sealed class CSharpKernelCompiler
{
    private const string WrapperType = "InlineKernel";

    private static readonly string[] DefaultUsings =
        ["System", "System.Collections.Generic", "System.Linq", "System.Numerics", "System.Text", "System.Threading"];

    private readonly ConcurrentDictionary<string, Lazy<Assembly>> _compiled = new(StringComparer.Ordinal);
    private readonly Lazy<IReadOnlyList<MetadataReference>> _references = new(LoadReferences);

    private readonly Lazy<string?> _cacheDirectory;

    /// <summary>A compiler keeping compiled kernels in <paramref name="cacheDirectory"/> too (null: memory only).</summary>
    public CSharpKernelCompiler(string? cacheDirectory)
        : this(new Lazy<string?>(cacheDirectory))
    {
    }

    private CSharpKernelCompiler(Lazy<string?> cacheDirectory) => _cacheDirectory = cacheDirectory;

    /// <summary>Where compiled kernels are kept across workers; null: memory only.</summary>
    public string? CacheDirectory => _cacheDirectory.Value;

    /// <summary>A compiler with the user's cache (<see cref="DefaultCacheDirectory"/>), made on first use.</summary>
    public static CSharpKernelCompiler WithUserCache() => new(new Lazy<string?>(DefaultCacheDirectory));

    /// <summary>
    /// The user's cache (<c>$GILBRIDGE_CSHARP_CACHE</c>, else
    /// <c>$XDG_CACHE_HOME/gilbridge/csharp</c>, else <c>~/.cache/gilbridge/csharp</c>),
    /// created private (0700); null when it cannot be made private to this user (loading
    /// an assembly from a directory others can write to would run their code).
    /// </summary>
    public static string? DefaultCacheDirectory()
    {
        var configured = Environment.GetEnvironmentVariable("GILBRIDGE_CSHARP_CACHE");
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var directory = !string.IsNullOrEmpty(configured) ? configured
            : !string.IsNullOrEmpty(root) ? Path.Combine(root, "gilbridge", "csharp")
            : string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".cache", "gilbridge", "csharp");
        if (directory is null || OperatingSystem.IsWindows())
        {
            return null;
        }

        try
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var mode = File.GetUnixFileMode(directory);
            return (mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) == 0 ? directory : null;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The compiled assembly of <paramref name="source"/>.</summary>
    /// <exception cref="KernelException">CSharpCompileError with the first error's line and column.</exception>
    public Assembly Compile(string source)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(source)));
        // PublicationOnly: a failed compilation is not cached (it raises every time).
        var lazy = _compiled.GetOrAdd(hash, h => new Lazy<Assembly>(() => LoadOrCompile(h, source), LazyThreadSafetyMode.PublicationOnly));
        return lazy.Value;
    }

    /// <summary>The callable public static methods a compiled source declares (overloads included).</summary>
    public static IReadOnlyList<MethodInfo> PublicStaticMethods(Assembly assembly) =>
        [.. assembly.GetExportedTypes()
            .SelectMany(type => type.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(method => !method.IsSpecialName && !method.ContainsGenericParameters)];

    /// <summary>The names of <see cref="PublicStaticMethods"/>, each once, in declaration order.</summary>
    public static IReadOnlyList<string> PublicStaticMethodNames(Assembly assembly) =>
        [.. PublicStaticMethods(assembly).Select(method => method.Name).Distinct(StringComparer.Ordinal)];

    private Assembly LoadOrCompile(string hash, string source)
    {
        var cached = CacheDirectory is null ? null : Path.Combine(CacheDirectory, hash + ".dll");
        if (cached is not null && File.Exists(cached))
        {
            try
            {
                return LoadImage(hash, File.ReadAllBytes(cached));
            }
            catch (BadImageFormatException)
            {
                // A torn or foreign file: compile again and replace it.
            }
        }

        var image = Emit(hash, source);
        if (cached is not null)
        {
            TryStore(cached, image);
        }

        return LoadImage(hash, image);
    }

    private static Assembly LoadImage(string hash, byte[] image)
    {
        using var stream = new MemoryStream(image, writable: false);
        return new AssemblyLoadContext("gilbridge-csharp-" + hash[..16]).LoadFromStream(stream);
    }

    private static void TryStore(string path, byte[] image)
    {
        // Written aside, then renamed: a worker reading the cache sees a whole file or none.
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            File.WriteAllBytes(temporary, image);
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            File.Delete(temporary);
        }
    }

    private byte[] Emit(string hash, string source)
    {
        var parse = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Latest);
        var user = CSharpSyntaxTree.ParseText(source, parse);
        var tree = DeclaresTypes(user.GetCompilationUnitRoot()) ? user : CSharpSyntaxTree.ParseText(Wrap(source), parse);
        var compilation = CSharpCompilation.Create(
            "gilbridge_csharp_" + hash[..16],
            [tree],
            _references.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, optimizationLevel: OptimizationLevel.Release,
                allowUnsafe: true, nullableContextOptions: NullableContextOptions.Disable));
        using var output = new MemoryStream();
        var emitted = compilation.Emit(output);
        if (!emitted.Success)
        {
            throw CompileError(emitted.Diagnostics);
        }

        return output.ToArray();
    }

    /// <summary>Whether the source is a whole compilation unit (namespaces or types), not bare members.</summary>
    private static bool DeclaresTypes(CompilationUnitSyntax root) =>
        root.Members.Any(member => member is BaseNamespaceDeclarationSyntax or BaseTypeDeclarationSyntax or DelegateDeclarationSyntax);

    private static string Wrap(string source)
    {
        var header = new StringBuilder();
        foreach (var name in DefaultUsings)
        {
            header.Append("using ").Append(name).Append("; ");
        }

        // #line 1: diagnostics count the user's lines, not the wrapper's.
        return $"{header}public static class {WrapperType} {{\n#line 1\n{source}\n#line default\n}}\n";
    }

    private static KernelException CompileError(IEnumerable<Diagnostic> diagnostics)
    {
        var errors = diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        var text = new StringBuilder();
        foreach (var error in errors)
        {
            text.Append(Describe(error)).Append('\n');
        }

        var first = errors.Count > 0 ? Describe(errors[0]) : "the compilation failed";
        return new KernelException("CSharpCompileError", first, text.ToString());
    }

    /// <summary>"line L, column C: error CSnnnn: message", 1-based, in the user's source.</summary>
    private static string Describe(Diagnostic diagnostic)
    {
        var span = diagnostic.Location.GetMappedLineSpan();
        var start = span.StartLinePosition;
        return $"line {start.Line + 1}, column {start.Character + 1}: error {diagnostic.Id}: {diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
    }

    // Compiled against what this worker runs on: the runtime's assemblies (the trusted
    // platform list of a self-contained app) and the worker's own (MessagePack, Bridge.Kernels).
    private static IReadOnlyList<MetadataReference> LoadReferences()
    {
        var paths = ((AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string) ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Where(path => path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase));
        var references = new List<MetadataReference>();
        foreach (var path in paths)
        {
            try
            {
                references.Add(MetadataReference.CreateFromFile(path));
            }
            catch (Exception exception) when (exception is IOException or BadImageFormatException)
            {
                // Not a managed assembly (a native file on the list): nothing to reference.
            }
        }

        return references;
    }
}
