using System.Threading.Channels;
using Bridge.Contracts.V1;
using Grpc.Core;

namespace Bridge.Worker.Hosting;

/// <summary>
/// Everything the worker sends on its Work stream. Results come from the Python thread
/// and the kernel threads, output from any thread; a gRPC request stream is not safe for
/// concurrent writes, so they all queue here and one task writes them in order.
/// </summary>
internal sealed class Outbox
{
    private readonly Channel<WorkerMessage> _messages = Channel.CreateUnbounded<WorkerMessage>(new UnboundedChannelOptions
    {
        SingleReader = true,
        AllowSynchronousContinuations = false,
    });

    /// <summary>Queues a message; false once the outbox is completed (the worker is exiting).</summary>
    public bool Post(WorkerMessage message) => _messages.Writer.TryWrite(message);

    /// <summary>No more messages: the writer sends what is queued and completes the stream.</summary>
    public void Complete() => _messages.Writer.TryComplete();

    /// <summary>The single writer: drains the queue into the stream until <see cref="Complete"/>.</summary>
    public async Task DrainAsync(IClientStreamWriter<WorkerMessage> stream, CancellationToken cancellationToken)
    {
        await foreach (var message in _messages.Reader.ReadAllAsync(cancellationToken))
        {
            await stream.WriteAsync(message, cancellationToken);
        }

        await stream.CompleteAsync();
    }
}
