namespace Bridge.Core.Objects.Runtime;

internal static class WaiterLists
{
    /// <summary>Completes and removes every waiter of a session that ended; returns how many.</summary>
    public static int CompleteSession<TWaiter, TOutcome>(this LinkedList<TWaiter> waiters, string sessionId, TOutcome outcome)
        where TWaiter : Waiter<TOutcome>
    {
        var completed = 0;
        for (var node = waiters.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.SessionId == sessionId)
            {
                node.Value.TryComplete(outcome);
                waiters.Remove(node);
                completed++;
            }

            node = next;
        }

        return completed;
    }
}
