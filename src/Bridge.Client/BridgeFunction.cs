using System.Text;
using System.Text.RegularExpressions;
using Bridge.Contracts.V1;
using Google.Protobuf;

namespace Bridge.Client;

/// <summary>
/// What a <see cref="BridgePool"/> task runs: a C# kernel (a public static method, run on a
/// worker's .NET thread with no GIL) or a Python function named by <c>module:function</c>.
/// </summary>
public sealed partial class BridgeFunction
{
    private BridgeFunction(Callable callable, string description)
    {
        Callable = callable;
        Description = description;
    }

    /// <summary>What it names, for messages.</summary>
    public string Description { get; }

    /// <summary>Whether it runs in Python (so its pool needs <see cref="BridgePoolOptions.Python"/>).</summary>
    public bool IsPython => Callable.KindCase == Callable.KindOneofCase.Python;

    internal Callable Callable { get; }

    /// <summary>
    /// A C# kernel by name: a built-in one ("Bridge.Kernels.Primes.Count", see
    /// src/Bridge.Kernels) or a user assembly's ("/abs/path/My.dll:My.Ns.Type.Method").
    /// </summary>
    public static BridgeFunction Kernel(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return new BridgeFunction(new Callable { Kernel = name }, name);
    }

    /// <summary>A public static method <paramref name="method"/> ("Namespace.Type.Method") of the assembly at <paramref name="assemblyPath"/>.</summary>
    public static BridgeFunction Kernel(string assemblyPath, string method)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(assemblyPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(method);
        return Kernel(Path.GetFullPath(assemblyPath) + ":" + method);
    }

    /// <summary>
    /// Inline C#: whole types or bare members (such as
    /// <c>"public static long Twice(long x) => 2 * x;"</c>), compiled with Roslyn by the
    /// worker that first runs it and cached by the source's hash. <paramref name="method"/>
    /// picks one of several public static methods. A compile error fails the task with
    /// <see cref="PoolTaskException"/> of type "CSharpCompileError".
    /// </summary>
    public static BridgeFunction CSharp(string source, string? method = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        return new BridgeFunction(new Callable { Kernel = "csharp:" + (method ?? "") + "\n" + source }, "inline C#" + (method is null ? "" : " " + method));
    }

    /// <summary>
    /// A Python function by reference, <c>"module:function"</c> (<c>"math:factorial"</c>,
    /// <c>"my_tasks:score"</c>, a dotted name for a class's static method): the worker imports
    /// the module from its pool's <see cref="BridgePythonEnvironment.SysPath"/>.
    /// </summary>
    public static BridgeFunction Python(string reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var match = PythonReference().Match(reference);
        if (!match.Success)
        {
            throw new ArgumentException($"'{reference}' is not a Python function reference 'module:function' (e.g. 'math:factorial')", nameof(reference));
        }

        // A pickle that names the function (GLOBAL), as pickle.dumps(f) does for a module-level
        // function: protocol 4 so that a dotted name resolves attribute by attribute.
        var pickle = new List<byte> { 0x80, 4, (byte)'c' };
        pickle.AddRange(Encoding.UTF8.GetBytes(match.Groups["module"].Value + "\n" + match.Groups["name"].Value + "\n"));
        pickle.Add((byte)'.');
        return new BridgeFunction(new Callable { Python = ByteString.CopyFrom([.. pickle]) }, reference);
    }

    /// <inheritdoc/>
    public override string ToString() => Description;

    [GeneratedRegex(@"^(?<module>[\p{L}_][\p{L}\p{N}_]*(\.[\p{L}_][\p{L}\p{N}_]*)*):(?<name>[\p{L}_][\p{L}\p{N}_]*(\.[\p{L}_][\p{L}\p{N}_]*)*)$", RegexOptions.CultureInvariant)]
    private static partial Regex PythonReference();
}
