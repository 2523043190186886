using Bridge.Client;

namespace Bridge.Host.Tests;

/// <summary>
/// The typed .NET client (Bridge.Client) against a real host process: each family through
/// two sessions, with the stdlib's timeouts and the contract's errors as .NET exceptions.
/// One class (split by family over files) so that its tests share one host.
/// </summary>
public sealed partial class BridgeClientTests(HostFixture fixture) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 30_000;

    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMilliseconds(TestTimeout - 2_000));

    private CancellationToken Token => _timeout.Token;

    public void Dispose() => _timeout.Dispose();

    private Task<BridgeSession> OpenAsync() => BridgeSession.OpenAsync(fixture.Host.Address, "client-tests", Token);

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}";
}
