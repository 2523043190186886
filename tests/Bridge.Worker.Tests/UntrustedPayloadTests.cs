using System.Buffers;
using System.Diagnostics;
using Bridge.Contracts.V1;
using MessagePack;

namespace Bridge.Worker.Tests;

/// <summary>
/// A kernel's arguments are read as untrusted data (README "Trust model"): nesting past the
/// bound and hash-flooding maps fail or pass quickly, and the worker serves its next task.
/// </summary>
public sealed class UntrustedPayloadTests
{
    private static readonly string Depth = $"{typeof(TestKernels).Assembly.Location}:Bridge.Worker.Tests.TestKernels.Depth";
    private static readonly string Size = $"{typeof(TestKernels).Assembly.Location}:Bridge.Worker.Tests.TestKernels.Size";

    [Fact(Timeout = 90_000)]
    public async Task A_deeply_nested_argument_is_a_ValueError_and_the_worker_serves_on()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(80));
        await using var harness = await WorkerHarness.StartAsync(python: null, timeout.Token);
        await harness.Connection.SendAsync(new WorkerCommand { Assign = new Assignment { PoolId = "kernels" } }, timeout.Token);
        Assert.Equal(WorkerMessage.MessageOneofCase.Ready, (await harness.Connection.NextAsync(timeout.Token))!.MessageCase);

        // 10,000 one-element arrays around 1: as the item (MAP), as the one argument of a
        // STARMAP item, and as a keyword argument of a CALL item.
        var deep = Nested(10_000);
        var asItem = await harness.RunAsync(WorkerHarness.KernelChunk(1, Depth, CallStyle.Map, [deep]), timeout.Token);
        var asArgument = await harness.RunAsync(WorkerHarness.KernelChunk(2, Depth, CallStyle.Starmap, [[0x91, .. deep]]), timeout.Token);
        var asKeyword = await harness.RunAsync(WorkerHarness.KernelChunk(3, Depth, CallStyle.Call, [[0x92, 0x90, 0x81, 0xa5, .. "value"u8, .. deep]]), timeout.Token);
        foreach (var failed in new[] { asItem, asArgument, asKeyword })
        {
            Assert.NotNull(failed.Error);
            Assert.Equal("ValueError", failed.Error.Type);
            Assert.Contains("nested deeper than", failed.Error.Message, StringComparison.Ordinal);
            Assert.Empty(failed.Values);
        }

        // Within the bound it converts, and the worker is still there for the next task.
        var fine = await harness.RunAsync(WorkerHarness.KernelChunk(4, Depth, CallStyle.Map, [Nested(100)]), timeout.Token);
        Assert.Null(fine.Error);
        Assert.Equal("100", WorkerHarness.Repr(fine.Values[0]));
        Assert.False(harness.Worker.HasExited);
        await harness.ShutdownAsync(timeout.Token);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_map_of_colliding_keys_converts_in_linear_time()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(80));
        await using var harness = await WorkerHarness.StartAsync(python: null, timeout.Token);
        await harness.Connection.SendAsync(new WorkerCommand { Assign = new Assignment { PoolId = "kernels" } }, timeout.Token);
        Assert.Equal(WorkerMessage.MessageOneofCase.Ready, (await harness.Connection.NextAsync(timeout.Token))!.MessageCase);

        // long.GetHashCode is (int)k ^ (int)(k >> 32): every key k * (2^32 + 1) hashes to 0,
        // so a plain Dictionary<long, long> takes quadratic time (~1.25e9 comparisons here).
        const int count = 50_000;
        var writer = new ArrayBufferWriter<byte>();
        var packer = new MessagePackWriter(writer);
        packer.WriteMapHeader(count);
        for (long k = 1; k <= count; k++)
        {
            packer.Write(k * ((1L << 32) + 1));
            packer.Write(k);
        }

        packer.Flush();
        Assert.Equal(0, ((1L << 32) + 1).GetHashCode());

        var clock = Stopwatch.StartNew();
        var result = await harness.RunAsync(WorkerHarness.KernelChunk(1, Size, CallStyle.Map, [writer.WrittenSpan.ToArray()]), timeout.Token);
        clock.Stop();
        Assert.Null(result.Error);
        Assert.Equal(count.ToString(System.Globalization.CultureInfo.InvariantCulture), WorkerHarness.Repr(result.Values[0]));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"a map of {count} colliding keys took {clock.Elapsed.TotalMilliseconds:F0} ms");
        await harness.ShutdownAsync(timeout.Token);
    }

    private static byte[] Nested(int depth) => [.. Enumerable.Repeat((byte)0x91, depth), 0x01];
}
