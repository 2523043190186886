using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Bridge.Contracts.V1;
using Bridge.Host.Hosting;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Execution;

/// <summary>
/// Starts Bridge.Worker processes and keeps warm idle ones per Python environment, so a
/// Pool or Process does not pay .NET and CPython start-up. A worker proves who it is with
/// the random token it was started with.
/// </summary>
internal sealed class WorkerLauncher(
    IOptions<BridgeHostOptions> options,
    IHostApplicationLifetime lifetime,
    ILogger<WorkerLauncher> logger) : IHostedService
{
    private readonly BridgeHostOptions _options = options.Value;
    private readonly ConcurrentDictionary<string, WorkerProcess> _byToken = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<WorkerProcess>> _warm = new();

    public static string EnvironmentKey(PythonEnvironment? python) =>
        python is null || string.IsNullOrEmpty(python.Library) ? "dotnet" : $"{python.Executable}|{python.Library}";

    public WorkerProcess? FindByToken(string token) => _byToken.GetValueOrDefault(token);

    /// <summary>A warm worker for the environment, or a new one; the caller awaits Connected.</summary>
    public WorkerProcess Acquire(PythonEnvironment? python)
    {
        var key = EnvironmentKey(python);
        WorkerProcess? worker = null;
        if (_warm.TryGetValue(key, out var idle))
        {
            while (idle.TryDequeue(out var candidate))
            {
                if (!candidate.Exited.IsCompleted)
                {
                    worker = candidate;
                    break;
                }
            }
        }

        worker ??= Launch(python, key);
        Replenish(python, key);
        return worker;
    }

    /// <summary>Starts warm workers for an environment ahead of its first pool.</summary>
    public void Prewarm(PythonEnvironment? python) => Replenish(python, EnvironmentKey(python));

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Workers hold Work streams open; the server's graceful stop would wait for them,
        // so they are told to go first.
        lifetime.ApplicationStopping.Register(StopAllWorkers);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var worker in _byToken.Values)
        {
            Signals.Send(worker.Pid, Signals.Kill);
        }

        return Task.CompletedTask;
    }

    private void StopAllWorkers()
    {
        foreach (var worker in _byToken.Values)
        {
            worker.Commands.Writer.TryComplete();
            Signals.Send(worker.Pid, Signals.Terminate);
        }
    }

    private void Replenish(PythonEnvironment? python, string key)
    {
        var idle = _warm.GetOrAdd(key, _ => new ConcurrentQueue<WorkerProcess>());
        while (idle.Count(w => !w.Exited.IsCompleted) < _options.WarmWorkers)
        {
            idle.Enqueue(Launch(python, key));
        }
    }

    private WorkerProcess Launch(PythonEnvironment? python, string key)
    {
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        var start = new ProcessStartInfo(_options.WorkerPath)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add("--host");
        start.ArgumentList.Add("unix:" + _options.SocketPath);
        start.ArgumentList.Add("--worker-token");
        start.ArgumentList.Add(token);
        if (python is not null && !string.IsNullOrEmpty(python.Library))
        {
            start.ArgumentList.Add("--python-executable");
            start.ArgumentList.Add(python.Executable);
            start.ArgumentList.Add("--python-library");
            start.ArgumentList.Add(python.Library);
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start the worker {_options.WorkerPath}");
        }

        var worker = new WorkerProcess(process, token, key);
        _byToken[token] = worker;
        process.OutputDataReceived += (_, line) => LogWorkerLine(worker, line.Data);
        process.ErrorDataReceived += (_, line) => LogWorkerLine(worker, line.Data);
        process.Exited += (_, _) =>
        {
            _byToken.TryRemove(token, out _);
            worker.MarkExited();
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Log.WorkerStarted(logger, worker.Pid, key);
        return worker;
    }

    private void LogWorkerLine(WorkerProcess worker, string? line)
    {
        if (!string.IsNullOrEmpty(line))
        {
            Log.WorkerOutput(logger, worker.Pid, line);
        }
    }
}
