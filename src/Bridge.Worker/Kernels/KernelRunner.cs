using System.Collections.Concurrent;
using Bridge.Contracts.V1;

namespace Bridge.Worker.Kernels;

/// <summary>
/// Runs kernel chunks on up to N dedicated threads, no GIL involved. Kernels are
/// CPU-bound or block (Timing.Sleep), so they get their own threads rather than the
/// thread pool, which keeps serving the gRPC stream. Threads start on first use.
/// </summary>
internal sealed class KernelRunner(KernelInvoker invoker, int slots)
{
    private readonly BlockingCollection<(TaskChunk Chunk, Action<TaskResult> Done)> _queue = [];
    private int _started;

    public int Slots { get; } = slots;

    /// <summary>Queues a chunk; <paramref name="done"/> is called on a kernel thread with its result.</summary>
    public void Enqueue(TaskChunk chunk, Action<TaskResult> done)
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            for (var i = 0; i < Slots; i++)
            {
                new Thread(Run) { IsBackground = true, Name = $"kernel-{i}" }.Start();
            }
        }

        _queue.Add((chunk, done));
    }

    private void Run()
    {
        foreach (var (chunk, done) in _queue.GetConsumingEnumerable())
        {
            // Run never throws: every failure is a TaskError inside the result.
            var result = invoker.Run(chunk);
            // What the kernel wrote without a newline goes out before its result, as
            // Python's output does at the end of a chunk.
            Console.Out.Flush();
            Console.Error.Flush();
            done(result);
        }
    }
}
