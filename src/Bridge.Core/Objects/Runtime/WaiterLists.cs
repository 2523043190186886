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

    /// <summary>
    /// The object was freed: every waiter still waiting fails with <paramref name="reason"/>
    /// (see Waiter.TryEnd), and the list is emptied.
    /// </summary>
    public static void EndAll<TWaiter>(this ICollection<TWaiter> waiters, Func<BridgeException> reason)
        where TWaiter : ISessionWaiter
    {
        foreach (var waiter in waiters)
        {
            waiter.TryEnd(reason);
        }

        waiters.Clear();
    }

    /// <summary>
    /// Removes a waiting call's own node once it stops waiting, unless another call took it
    /// out already (a grant, an ended session or a freed object, each in its own turn while
    /// this call was suspended): removing a node twice throws.
    /// </summary>
    public static void RemoveIfListed<T>(this LinkedList<T> list, LinkedListNode<T> node)
    {
        if (node.List == list)
        {
            list.Remove(node);
        }
    }

    /// <summary>Whether a call of the session still waits here.</summary>
    public static bool HasPending<TWaiter>(this IEnumerable<TWaiter> waiters, string sessionId)
        where TWaiter : ISessionWaiter => waiters.Any(waiter => waiter.IsPending && waiter.SessionId == sessionId);

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

    bool TryEnd(Func<BridgeException> reason);
}
