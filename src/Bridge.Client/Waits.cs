using Bridge.Contracts.V1;

namespace Bridge.Client;

/// <summary>The stdlib's timeout meaning, as a <see cref="WaitPolicy"/>.</summary>
internal static class Waits
{
    /// <summary>Wait until done.</summary>
    public static WaitPolicy Forever => new() { Block = true };

    /// <summary>Never wait.</summary>
    public static WaitPolicy NoWait => new() { Block = false };

    /// <summary>
    /// null (or <see cref="Timeout.InfiniteTimeSpan"/>): wait until done; zero: do not wait;
    /// otherwise at most that long. Negative: <see cref="ArgumentOutOfRangeException"/>
    /// before any call, as the Python client's ValueError.
    /// </summary>
    public static WaitPolicy Of(TimeSpan? timeout, string parameterName = "timeout")
    {
        if (timeout is not { } value || value == Timeout.InfiniteTimeSpan)
        {
            return Forever;
        }

        if (value < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(parameterName, value, "a timeout must be non-negative (or null to wait until done)");
        }

        return new WaitPolicy { Block = true, TimeoutSeconds = value.TotalSeconds };
    }
}
