using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Xunit.Abstractions;

namespace Bridge.Host.Tests;

/// <summary>
/// gRPC's own framing broken, below any gRPC client: raw HTTP/2 requests over the host's
/// socket whose length-prefixed messages are cut short, overlong, doubled, flagged
/// compressed without an encoding, or missing. Each gets a precise grpc-status (never
/// UNKNOWN or INTERNAL), and the host keeps serving.
/// </summary>
public sealed class FramingTests(HostFixture fixture, ITestOutputHelper output) : IClassFixture<HostFixture>, IDisposable
{
    private const int TestTimeout = 30_000;

    private const int InvalidArgument = 3;
    private const int ResourceExhausted = 8;
    private const int Unimplemented = 12;

    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromMilliseconds(TestTimeout));

    private HostProcess Host => fixture.Host;

    /// <summary>Each broken framing, the method kind it is sent to, and the grpc-status it must get.</summary>
    public static TheoryData<string, string, int> Frames() => new()
    {
        { "message cut short", "unary", InvalidArgument },
        { "prefix cut short", "unary", InvalidArgument },
        { "two messages", "unary", InvalidArgument },
        { "no message", "unary", InvalidArgument },
        { "compressed flag, no encoding", "unary", InvalidArgument },
        { "flag byte 2", "unary", InvalidArgument },
        { "gzip flag, not gzip", "unary", InvalidArgument },
        { "gzip, well-formed", "unary", 0 },
        { "length 2 GiB - 1", "unary", ResourceExhausted },
        { "unknown encoding", "unary", Unimplemented },
        { "message cut short", "Watch", InvalidArgument },
        { "no message", "Watch", InvalidArgument },
        { "two messages", "Watch", InvalidArgument },
        { "message cut short", "Work", InvalidArgument },
        { "prefix cut short", "Work", InvalidArgument },
        { "compressed flag, no encoding", "Work", InvalidArgument },
        { "flag byte 2", "Work", InvalidArgument },
    };

    [Theory(Timeout = TestTimeout)]
    [MemberData(nameof(Frames))]
    public async Task Broken_framing_gets_a_precise_status(string frame, string method, int expected)
    {
        var path = method switch
        {
            "Watch" => "/bridge.v1.Sessions/Watch",
            "Work" => "/bridge.v1.Execution/Work",
            _ => "/bridge.v1.Sessions/GetHostInfo",
        };
        var message = method == "unary" ? Array.Empty<byte>() : new WatchRequest { SessionId = Guid.NewGuid().ToString("N") }.ToByteArray();
        var (body, encoding) = Framed(frame, message);
        var (code, detail) = await SendAsync(path, body, encoding, Token());
        output.WriteLine($"{frame} on {path}: grpc-status {code} {detail}");
        Assert.True(code == expected, $"{frame} on {path}: grpc-status {code} '{detail}', expected {expected}");
        if (expected == InvalidArgument)
        {
            Assert.Contains(path[1..], detail, StringComparison.Ordinal);
        }

        Assert.Equal(Host.Pid, (await Host.InfoAsync(Token())).Pid);
    }

    public void Dispose() => _testTimeout.Dispose();

    private static (byte[] Body, string? Encoding) Framed(string frame, byte[] message)
    {
        byte[] Frame(byte flag, byte[] payload, int? length = null)
        {
            var framed = new byte[5 + payload.Length];
            framed[0] = flag;
            BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)(length ?? payload.Length));
            payload.CopyTo(framed, 5);
            return framed;
        }

        return frame switch
        {
            "message cut short" => (Frame(0, message, message.Length + 40), null),
            "prefix cut short" => ([0, 0, 0], null),
            "length 2 GiB - 1" => (Frame(0, message, int.MaxValue), null),
            "two messages" => ([.. Frame(0, message), .. Frame(0, message)], null),
            "no message" => ([], null),
            "compressed flag, no encoding" => (Frame(1, message), null),
            "gzip flag, not gzip" => (Frame(1, [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), "gzip"),
            "gzip, well-formed" => (Frame(1, Gzip(message)), "gzip"),
            "unknown encoding" => (Frame(1, message), "br0ken"),
            "flag byte 2" => (Frame(2, message), null),
            _ => throw new ArgumentOutOfRangeException(nameof(frame), frame, null),
        };
    }

    private static byte[] Gzip(byte[] message)
    {
        using var compressed = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest))
        {
            gzip.Write(message);
        }

        return compressed.ToArray();
    }

    /// <summary>One HTTP/2 POST over the host's socket: its grpc-status (from trailers, or headers when trailers-only) and grpc-message.</summary>
    private async Task<(int Code, string Detail)> SendAsync(string path, byte[] body, string? encoding, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(Host.SocketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        using var client = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://localhost" + path)
        {
            Content = new ByteArrayContent(body),
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        if (encoding is not null)
        {
            request.Headers.TryAddWithoutValidation("grpc-encoding", encoding);
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // A stream that is serving (a Watch of a live session) is read for a moment only.
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var content = await response.Content.ReadAsByteArrayAsync(timeout.Token);
        string? Header(string name) =>
            response.TrailingHeaders.TryGetValues(name, out var values) || response.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;
        var status = Header("grpc-status") ?? throw new InvalidOperationException(
            $"no grpc-status (HTTP/{response.Version} {(int)response.StatusCode}, {response.Headers} {response.Content.Headers}: {System.Text.Encoding.UTF8.GetString(content)})");
        return (int.Parse(status, System.Globalization.CultureInfo.InvariantCulture), Uri.UnescapeDataString(Header("grpc-message") ?? ""));
    }

    private CancellationToken Token() => _testTimeout.Token;
}
