using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>
/// The items of one queue this session received and has not acknowledged yet. The host
/// leases each item it hands out until the session acknowledges it; a session that ends
/// with items unacknowledged gets them put back (at-least-once on a crash). Acknowledging
/// rides on the session's next Get of that queue (no call of its own), and the session
/// acknowledges what is left before its Goodbye.
/// </summary>
internal sealed class QueueAcks(BridgeSession session, string queue)
{
    private long _pending;

    /// <summary>An item was handed to the caller.</summary>
    public void Received(int count) => Interlocked.Add(ref _pending, count);

    /// <summary>Takes what is owed, for a Get that carries it.</summary>
    public long Take() => Interlocked.Exchange(ref _pending, 0);

    /// <summary>
    /// A Get that carried <paramref name="count"/> acknowledgements failed before the host
    /// applied them: owe them again. Only when the call surely did not reach the host (the
    /// host applies them first thing, so a call that failed there has applied them, and
    /// applying them twice is an error).
    /// </summary>
    public void Restore(long count) => Interlocked.Add(ref _pending, count);

    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var count = Take();
        if (count > 0)
        {
            await session.Queues.AckAsync(new AckRequest { Target = session.Ref(queue), Count = count }, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
    }
}
