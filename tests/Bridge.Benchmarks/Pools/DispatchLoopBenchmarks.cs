using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Bridge.Contracts.V1;
using Bridge.Host.Execution;
using Google.Protobuf;
using MessagePack;

namespace Bridge.Benchmarks.Pools;

/// <summary>
/// The host's own share of running a chunk: ExecutionPool.Submit queues it, Dispatch hands
/// it to the least busy worker with a credit, OnResult/OnReady take the result and the
/// returned credit, and the owner's event channel carries the result out.
/// </summary>
/// <remarks>
/// A real Bridge.Worker speaks to a pool only through a host's Execution.Work gRPC stream,
/// which cannot run inside this process without the whole host. So the two Work streams
/// are in-memory stand-ins: this benchmark reads each worker's command channel (what the
/// stream's writer would send) and calls OnResult and OnReady (what the stream's reader
/// does when the worker answers), with an empty result. The worker processes themselves
/// are stand-ins too: WorkerProcess needs a live OS process, so each is a `sleep` child
/// started here and killed by its pid in cleanup. <see cref="PoolRoundTripBenchmarks"/>
/// measures the same work through a real host and real workers.
/// </remarks>
[MemoryDiagnoser]
public class DispatchLoopBenchmarks
{
    private const int Workers = 2;

    private readonly List<Process> _standIns = [];
    private readonly List<WorkerProcess> _workers = [];
    private ExecutionPool _pool = null!;
    private TaskChunk[] _chunks = [];
    private long _nextTaskId;

    /// <summary>1: one apply_async; 100: a map cut into 100 chunks.</summary>
    [Params(1, 100)]
    public int Chunks { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pool = new ExecutionPool("bench-pool", new CreatePoolRequest { SessionId = "bench-session", Processes = Workers, Name = "bench" });
        for (var i = 0; i < Workers; i++)
        {
            var standIn = Process.Start(new ProcessStartInfo("sleep", "3600") { UseShellExecute = false })
                ?? throw new InvalidOperationException("could not start a stand-in worker process");
            _standIns.Add(standIn);
            var worker = new WorkerProcess(standIn, $"token-{i}", "dotnet");
            _workers.Add(worker);
            _pool.AddWorker(worker, replacement: false);
            if (!worker.Commands.Reader.TryRead(out var assign) || assign.CommandCase != WorkerCommand.CommandOneofCase.Assign)
            {
                throw new InvalidOperationException("a new worker was not sent its assignment first");
            }

            // A kernel worker on this 2-core machine announces two slots.
            _pool.OnReady(worker, 2);
        }

        var item = ByteString.CopyFrom(MessagePackSerializer.Serialize(10));
        _chunks = new TaskChunk[Chunks];
        for (var i = 0; i < Chunks; i++)
        {
            _chunks[i] = new TaskChunk { Function = new Callable { Kernel = "Bridge.Kernels.Math.SumOfSquares" }, Style = CallStyle.Map };
            _chunks[i].Items.Add(item);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var standIn in _standIns)
        {
            standIn.Kill();
            standIn.WaitForExit();
            standIn.Dispose();
        }
    }

    [Benchmark(Description = "submit, dispatch, result, credit")]
    public int RunChunks()
    {
        // Task ids must be unique while running; the stored chunks are reused with fresh ids.
        foreach (var chunk in _chunks)
        {
            chunk.TaskId = ++_nextTaskId;
        }

        _pool.Submit(_chunks);
        var results = 0;
        while (results < Chunks)
        {
            var progressed = false;
            foreach (var worker in _workers)
            {
                while (worker.Commands.Reader.TryRead(out var command))
                {
                    if (command.CommandCase != WorkerCommand.CommandOneofCase.Task)
                    {
                        throw new InvalidOperationException($"unexpected command {command.CommandCase}");
                    }

                    _pool.OnResult(worker, new TaskResult { TaskId = command.Task.TaskId, WorkerPid = worker.Pid });
                    _pool.OnReady(worker, 1);
                    progressed = true;
                }
            }

            while (_pool.Events.TryRead(out var poolEvent))
            {
                if (poolEvent.EventCase == PoolEvent.EventOneofCase.Result)
                {
                    results++;
                    progressed = true;
                }
            }

            if (!progressed)
            {
                throw new InvalidOperationException($"the pool stalled with {results} of {Chunks} results");
            }
        }

        return results;
    }
}
