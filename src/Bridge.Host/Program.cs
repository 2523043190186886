using Bridge.Host.Hosting;
using Microsoft.Extensions.Options;

var builder = WebApplication.CreateSlimBuilder(args);
builder.AddBridgeHost();

try
{
    var app = builder.Build();
    app.MapBridgeServices();
    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (StartupProblem(ex) is { } problem)
{
    // Bad options or a taken socket are the user's to fix: say so plainly, no stack trace.
    await Console.Error.WriteLineAsync($"Bridge.Host: {problem}");
    return 2;
}

static string? StartupProblem(Exception exception) => exception switch
{
    OptionsValidationException invalid => string.Join("; ", invalid.Failures),
    HostStartupException startup => startup.Message,
    AggregateException aggregate when aggregate.InnerExceptions.Count == 1 => StartupProblem(aggregate.InnerException!),
    IOException { InnerException: { } inner } => StartupProblem(inner),
    _ when exception.InnerException is { } inner => StartupProblem(inner),
    _ => null,
};
