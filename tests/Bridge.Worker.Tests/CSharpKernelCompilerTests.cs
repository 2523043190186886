using System.Security.Cryptography;
using System.Text;
using Bridge.Worker.Kernels;

namespace Bridge.Worker.Tests;

public sealed class CSharpKernelCompilerTests : IDisposable
{
    private readonly string _cache = Directory.CreateTempSubdirectory("gb-csharp-test-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [Fact(Timeout = 60_000)]
    public async Task Members_are_wrapped_with_the_usual_usings_and_compile_to_callable_methods()
    {
        await Task.Yield();
        var compiler = new CSharpKernelCompiler(cacheDirectory: null);
        var assembly = compiler.Compile("public static long Sum(long n) => Enumerable.Range(1, (int)n).Sum(i => (long)i);\nstatic int Hidden() => 0;");
        Assert.Equal(["Sum"], CSharpKernelCompiler.PublicStaticMethodNames(assembly));
        var sum = assembly.GetExportedTypes().Single().GetMethod("Sum")!;
        Assert.Equal(5050L, sum.Invoke(null, [100L]));
        // The same source again is the same assembly, not a second compilation.
        Assert.Same(assembly, compiler.Compile("public static long Sum(long n) => Enumerable.Range(1, (int)n).Sum(i => (long)i);\nstatic int Hidden() => 0;"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Errors_name_the_users_line_and_column_even_in_wrapped_members()
    {
        await Task.Yield();
        var compiler = new CSharpKernelCompiler(cacheDirectory: null);
        var error = Assert.Throws<KernelException>(() => compiler.Compile("public static int F(int x)\n{\n    return y;\n}\n"));
        Assert.Equal("CSharpCompileError", error.ErrorType);
        Assert.StartsWith("line 3, column 12: error CS0103:", error.Message, StringComparison.Ordinal);
        var whole = Assert.Throws<KernelException>(() => compiler.Compile("namespace N;\npublic static class C\n{\n  public static int F() => 1\n}\n"));
        Assert.StartsWith("line 4, column 29: error CS1002:", whole.Message, StringComparison.Ordinal);
        Assert.Contains("line 4, column 29", whole.Details, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_compiled_kernel_is_loaded_from_the_cache_by_its_sources_hash()
    {
        await Task.Yield();
        const string first = "public static int One() => 1;";
        const string second = "public static int Two() => 2;";
        new CSharpKernelCompiler(_cache).Compile(first);
        var stored = Path.Combine(_cache, Hash(first) + ".dll");
        Assert.True(File.Exists(stored));

        // Another worker finds second's hash in the cache and loads that file without
        // compiling: planted there, first's assembly answers for second.
        File.Copy(stored, Path.Combine(_cache, Hash(second) + ".dll"));
        var loaded = new CSharpKernelCompiler(_cache).Compile(second);
        Assert.Equal(["One"], CSharpKernelCompiler.PublicStaticMethodNames(loaded));

        // A torn file is compiled over.
        const string third = "public static int Three() => 3;";
        File.WriteAllBytes(Path.Combine(_cache, Hash(third) + ".dll"), [1, 2, 3]);
        Assert.Equal(["Three"], CSharpKernelCompiler.PublicStaticMethodNames(new CSharpKernelCompiler(_cache).Compile(third)));
    }

    [Fact(Timeout = 60_000)]
    public async Task The_catalog_picks_the_only_method_or_the_named_one_and_explains_otherwise()
    {
        await Task.Yield();
        var catalog = new KernelCatalog(new CSharpKernelCompiler(cacheDirectory: null));
        const string source = "public static int F(int x) => x; public static int G(int x) => 2 * x;";
        var named = catalog.Resolve($"csharp:G\n{source}");
        Assert.Equal(42, named.Overloads.Single().Invoke(null, [21]));
        Assert.Equal("csharp:InlineKernel.G", named.Name);
        var several = Assert.Throws<KernelException>(() => catalog.Resolve($"csharp:\n{source}"));
        Assert.Equal("ValueError", several.ErrorType);
        Assert.Contains("(F, G)", several.Message, StringComparison.Ordinal);
        var only = catalog.Resolve("csharp:\npublic static string Hi() => \"hi\";");
        Assert.Equal("hi", only.Overloads.Single().Invoke(null, []));
        Assert.Equal("AttributeError", Assert.Throws<KernelException>(() => catalog.Resolve($"csharp:H\n{source}")).ErrorType);
        Assert.Equal("ValueError", Assert.Throws<KernelException>(() => catalog.Resolve("csharp:no newline")).ErrorType);
    }

    private static string Hash(string source) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(source)));
}
