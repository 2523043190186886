using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Bridge.Benchmarks.Infrastructure;

namespace Bridge.Benchmarks;

/// <summary>
/// Runs the benchmark classes of this assembly: pick with --filter, shorten with --job short.
/// Reports go to tests/Bridge.Benchmarks/BenchmarkDotNet.Artifacts/ unless --artifacts says otherwise.
/// </summary>
/// <remarks>Not named Program: Bridge.Host's top-level Program is visible here through InternalsVisibleTo.</remarks>
internal static class BenchmarkProgram
{
    public static void Main(string[] args)
    {
        var artifacts = Path.Combine(RepositoryPaths.Root(), "tests", "Bridge.Benchmarks", "BenchmarkDotNet.Artifacts");
        BenchmarkSwitcher.FromAssembly(typeof(BenchmarkProgram).Assembly).Run(args, DefaultConfig.Instance.WithArtifactsPath(artifacts));
    }
}
