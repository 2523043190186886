namespace Bridge.Core.Objects.Runtime;

internal static class WaiterLists
{
    /// <summary>Ends (see Waiter.TryEndSession) and removes every waiter of a session that ended; returns how many.</summary>
    public static int EndSession<TWaiter>(this LinkedList<TWaiter> waiters, string sessionId)
        where TWaiter : ISessionWaiter
    {
        var completed = 0;
        for (var node = waiters.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.SessionId == sessionId)
            {
                node.Value.TryEndSession();
                waiters.Remove(node);
                completed++;
            }

            node = next;
        }

        return completed;
    }

    /// <summary>The waiters still waiting (not yet granted, withdrawn or ended).</summary>
    public static int Pending<TWaiter>(this IEnumerable<TWaiter> waiters)
        where TWaiter : ISessionWaiter => waiters.Count(waiter => waiter.IsPending);
}

/// <summary>What ending a session needs of a waiter, whatever its outcome type.</summary>
internal interface ISessionWaiter
{
    string SessionId { get; }

    bool IsPending { get; }

    bool TryEndSession();
}
