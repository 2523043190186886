using System.Diagnostics;

namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// Whether a lock may be granted cached now. Caching pays while one client uses the lock
/// alone; under contention every hand-off costs a recall round trip through the caching
/// client instead, and a Python client's watch thread competes for the GIL with the
/// client's own busy threads at each step of it (measured: ~14 ms per hand-off in a
/// two-process ping-pong, against ~1 ms with plain grants). So a grant recalled soon
/// after it was made puts caching off for a cool-down that doubles each time this repeats
/// (up to <see cref="MaxCooldown"/>) and is forgotten once a cached grant lasts.
/// Times are <see cref="Stopwatch"/> timestamps, passed in so the rule is testable.
/// </summary>
internal sealed class LockCachePolicy
{
    public static readonly TimeSpan MinCooldown = TimeSpan.FromMilliseconds(50);

    public static readonly TimeSpan MaxCooldown = TimeSpan.FromSeconds(2);

    /// <summary>A grant recalled after at least this long was worth caching.</summary>
    public static readonly TimeSpan LastingGrant = TimeSpan.FromSeconds(1);

    private TimeSpan _cooldown;
    private long _grantedAt;
    private long _pausedUntil;

    public TimeSpan Cooldown => _cooldown;

    public bool MayCache(long now) => now >= _pausedUntil;

    public void Granted(long now) => _grantedAt = now;

    public void Recalled(long now)
    {
        if (Stopwatch.GetElapsedTime(_grantedAt, now) >= LastingGrant)
        {
            _cooldown = TimeSpan.Zero;
            _pausedUntil = now;
            return;
        }

        var doubled = _cooldown * 2;
        _cooldown = doubled < MinCooldown ? MinCooldown : doubled > MaxCooldown ? MaxCooldown : doubled;
        _pausedUntil = now + (long)(_cooldown.TotalSeconds * Stopwatch.Frequency);
    }
}
