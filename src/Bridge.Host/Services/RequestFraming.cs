using System.Buffers;
using System.IO.Pipelines;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Services;

/// <summary>
/// gRPC's framing of a request checked as it is read, so broken framing from a raw client is
/// INVALID_ARGUMENT (ValueError) naming what is wrong. grpc-dotnet answers it with INTERNAL
/// ("Incomplete message.", "Additional data after the message received.", "Request did not
/// include grpc-encoding value with compressed message.") or UNKNOWN (a flag byte other than
/// 0 and 1), the statuses of a host bug. The request body is read through
/// <see cref="CheckedBodyReader"/>, which throws the <see cref="RpcException"/> that
/// grpc-dotnet makes the call's status, as it does for the request marshaller's (see
/// <see cref="MalformedRequests"/>). A message over the size limit stays grpc-dotnet's
/// RESOURCE_EXHAUSTED, an unknown grpc-encoding its UNIMPLEMENTED.
/// </summary>
internal static partial class RequestFraming
{
    [LoggerMessage(EventId = 121, Level = LogLevel.Debug, Message = "Refused a request to {Method} with broken gRPC framing: {Reason}")]
    private static partial void Refused(ILogger logger, string method, string reason);

    /// <summary>Checks the framing of every gRPC call's request. Call before the services are mapped.</summary>
    public static IApplicationBuilder UseRequestFramingCheck(this IApplicationBuilder app)
    {
        var maxMessage = app.ApplicationServices.GetRequiredService<IOptions<GrpcServiceOptions>>().Value.MaxReceiveMessageSize ?? int.MaxValue;
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(RequestFraming));
        return app.Use(next => context =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc
                && context.Features.Get<IRequestBodyPipeFeature>() is { } body)
            {
                var encoding = context.Request.Headers["grpc-encoding"].ToString();
                var rules = new FramingRules(
                    grpc.Method.FullName,
                    OneMessage: grpc.Method.Type is MethodType.Unary or MethodType.ServerStreaming,
                    Encoding: encoding.Length > 0 && !encoding.Equals("identity", StringComparison.OrdinalIgnoreCase) ? encoding : null,
                    maxMessage,
                    logger);
                context.Features.Set<IRequestBodyPipeFeature>(new CheckedBody(new CheckedBodyReader(body.Reader, rules)));
            }

            return next(context);
        });
    }

    private sealed record FramingRules(string Method, bool OneMessage, string? Encoding, int MaxMessage, ILogger Logger)
    {
        /// <summary>
        /// Null when <paramref name="message"/> decompresses with the request's encoding
        /// (gzip or deflate; another is grpc-dotnet's UNIMPLEMENTED) within the size limit
        /// or past it (then RESOURCE_EXHAUSTED is grpc-dotnet's); otherwise why not.
        /// grpc-dotnet decompresses before the request marshaller runs, and answers a
        /// stream that is not what it says with UNKNOWN.
        /// </summary>
        public string? Undecompressable(ReadOnlySequence<byte> message)
        {
            Stream? decompressor = Encoding switch
            {
                "gzip" => new System.IO.Compression.GZipStream(new MemoryStream(message.ToArray()), System.IO.Compression.CompressionMode.Decompress),
                "deflate" => new System.IO.Compression.ZLibStream(new MemoryStream(message.ToArray()), System.IO.Compression.CompressionMode.Decompress),
                _ => null,
            };
            if (decompressor is null)
            {
                return null;
            }

            using (decompressor)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
                try
                {
                    long total = 0;
                    int read;
                    while (total <= MaxMessage && (read = decompressor.Read(buffer, 0, buffer.Length)) > 0)
                    {
                        total += read;
                    }

                    return null;
                }
                catch (InvalidDataException ex)
                {
                    return $"a message flagged compressed does not decompress as {Encoding}: {ex.Message}";
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }

        public RpcException Refuse(string reason)
        {
            Refused(Logger, Method, reason);
            var message = $"the request to {Method} is not well-framed gRPC: {reason}";
            return new RpcException(
                new Status(StatusCode.InvalidArgument, message),
                new Metadata { { BridgeCallInterceptor.ExceptionTrailer, "ValueError" } },
                message);
        }
    }

    private sealed class CheckedBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }

    /// <summary>
    /// Passes the body through unchanged, following its frames (a flag byte, a 4-byte
    /// big-endian length, the message) over each byte once, as reads return them.
    /// </summary>
    private sealed class CheckedBodyReader(PipeReader inner, FramingRules rules) : PipeReader
    {
        private ReadOnlySequence<byte> _last;

        // Absolute offsets in the body: where _last starts, and how far the frames are followed.
        private long _lastStart;
        private long _scanned;

        private int _headerBytes;
        private uint _length;
        private uint _declared;
        private long _bodyLeft;
        private int _frames;
        private bool _compressed;
        private long _offset;
        private readonly List<(long Start, long Length)> _compressedFrames = [];

        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            var result = await inner.ReadAsync(cancellationToken);
            Follow(result);
            return result;
        }

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }

            Follow(result);
            return true;
        }

        public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            _lastStart += _last.Slice(_last.Start, consumed).Length;
            _last = default;
            inner.AdvanceTo(consumed, examined);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        private void Follow(in ReadResult result)
        {
            _last = result.Buffer;
            _offset = 0;
            foreach (var segment in result.Buffer.Slice(_scanned - _lastStart))
            {
                Follow(segment.Span);
                _offset += segment.Length;
            }

            _scanned = _lastStart + result.Buffer.Length;

            // A compressed message, once all of it is in the buffer (grpc-dotnet consumes
            // only whole messages), must decompress.
            for (var i = _compressedFrames.Count - 1; i >= 0; i--)
            {
                var (start, length) = _compressedFrames[i];
                if (start + length <= _scanned)
                {
                    _compressedFrames.RemoveAt(i);
                    if (start >= _lastStart && rules.Undecompressable(result.Buffer.Slice(start - _lastStart, length)) is { } reason)
                    {
                        throw rules.Refuse(reason);
                    }
                }
            }
            if (result.IsCompleted)
            {
                End();
            }
        }

        private void Follow(ReadOnlySpan<byte> bytes)
        {
            var at = 0;
            while (at < bytes.Length)
            {
                if (_bodyLeft > 0)
                {
                    var skip = (int)Math.Min(_bodyLeft, bytes.Length - at);
                    _bodyLeft -= skip;
                    at += skip;
                    continue;
                }

                var next = bytes[at++];
                if (_headerBytes == 0)
                {
                    if (_frames == 1 && rules.OneMessage)
                    {
                        throw rules.Refuse("the method takes one message, and a second one followed");
                    }

                    if (next > 1)
                    {
                        throw rules.Refuse($"a message's flag byte is 0x{next:x2} (0: plain, 1: compressed)");
                    }

                    if (next == 1 && rules.Encoding is null)
                    {
                        throw rules.Refuse("a message is flagged compressed, and the request names no grpc-encoding");
                    }
                }
                else
                {
                    _length = (_length << 8) | next;
                }

                if (_headerBytes == 0)
                {
                    _compressed = next == 1;
                }

                if (++_headerBytes == 5)
                {
                    _frames++;
                    (_declared, _bodyLeft) = (_length, _length);
                    (_headerBytes, _length) = (0, 0);
                    if (_compressed && _declared <= rules.MaxMessage)
                    {
                        _compressedFrames.Add((_scanned + _offset + at, _declared));
                    }
                }
            }
        }

        private void End()
        {
            if (_headerBytes > 0)
            {
                throw rules.Refuse($"the request ends inside a message's 5-byte prefix ({_headerBytes} bytes of it)");
            }

            // A message over the size limit is grpc-dotnet's RESOURCE_EXHAUSTED, whether or not it all came.
            if (_bodyLeft > 0 && _declared <= rules.MaxMessage)
            {
                throw rules.Refuse($"the request ends {_bodyLeft} bytes short of the end of its last message");
            }

            if (_frames == 0 && rules.OneMessage)
            {
                throw rules.Refuse("the request has no message");
            }
        }
    }
}
