namespace Bridge.Benchmarks.Infrastructure;

internal static class RepositoryPaths
{
    /// <summary>The folder holding Bridge.sln, above this assembly's output folder (also BenchmarkDotNet's generated ones).</summary>
    public static string Root()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Bridge.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Bridge.sln) above " + AppContext.BaseDirectory);
    }
}
