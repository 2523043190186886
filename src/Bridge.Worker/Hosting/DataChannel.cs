using System.Buffers.Binary;
using System.Net.Sockets;
using System.Threading.Channels;
using Bridge.Contracts.V1;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Bridge.Worker.Hosting;

/// <summary>
/// The worker's data socket: the owner of a direct pool connects here and feeds the worker
/// itself, so chunks and results never pass through the host (one machine, a Unix socket in
/// the host's private directory). Each connection first presents a token; it is attached to
/// the assignment (<see cref="DataLease"/>) that carries the same token, waiting briefly for
/// that assignment to arrive from the host. Frames: a 4-byte little-endian length, then a
/// DataFrame (protos/bridge/v1/execution.proto).
/// </summary>
internal sealed class DataChannel(string path, ILogger logger) : IDisposable
{
    // Frames larger than this are refused (the host's payload limit is 64 MiB by default).
    public const int MaxFrameBytes = 1 << 30;

    // How long a connection may wait for its assignment (the host sends it before it
    // answers the pool's creation, so this covers only the race between the two sockets).
    private static readonly TimeSpan AssignmentWait = TimeSpan.FromSeconds(10);

    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly Lock _gate = new();
    private DataLease? _lease;
    private TaskCompletionSource _leaseChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Listens (a stale socket file is replaced; the file is private to the user).</summary>
    public void Listen()
    {
        if (File.Exists(path))
        {
            File.Delete(path);
        }

        _listener.Bind(new UnixDomainSocketEndPoint(path));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        _listener.Listen(16);
    }

    /// <summary>The assignment now served (null: none, or one on the host's path).</summary>
    public void SetLease(DataLease? lease)
    {
        lock (_gate)
        {
            _lease = lease;
            var changed = _leaseChanged;
            _leaseChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            changed.TrySetResult();
        }
    }

    /// <summary>Accepts connections until cancelled; each is served by its lease.</summary>
    public async Task AcceptAsync(Action<TaskChunk> dispatch, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptAsync(cancellationToken);
                _ = ServeAsync(socket, dispatch, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
        {
            Log.DataChannelFailed(logger, exception.Message);
        }
    }

    public void Dispose()
    {
        _listener.Dispose();
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Gone already; the host removes it after the exit otherwise.
        }
    }

    private async Task ServeAsync(Socket socket, Action<TaskChunk> dispatch, CancellationToken cancellationToken)
    {
        using var _ = socket;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            var first = await ReadFrameAsync(stream, cancellationToken);
            if (first?.FrameCase != DataFrame.FrameOneofCase.Token || await LeaseForAsync(first.Token, cancellationToken) is not { } lease)
            {
                Log.DataConnectionRefused(logger);
                return;
            }

            await lease.ServeAsync(stream, dispatch, cancellationToken);
        }
        catch (Exception exception) when (exception is IOException or SocketException or InvalidProtocolBufferException or OperationCanceledException or InvalidDataException)
        {
            // The owner went away or sent garbage: this connection ends, the worker goes on.
        }
    }

    private async Task<DataLease?> LeaseForAsync(string token, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + AssignmentWait;
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_lease is { } lease && lease.Matches(token))
                {
                    return lease;
                }

                changed = _leaseChanged.Task;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                return null;
            }

            try
            {
                await changed.WaitAsync(left, cancellationToken);
            }
            catch (TimeoutException)
            {
                return null;
            }
        }
    }

    /// <summary>One frame, or null at a clean end of stream.</summary>
    public static async Task<DataFrame?> ReadFrameAsync(Stream stream, CancellationToken cancellationToken)
    {
        var header = new byte[4];
        var read = await stream.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, cancellationToken);
        if (read == 0)
        {
            return null;
        }

        if (read < header.Length)
        {
            throw new InvalidDataException("the data socket ended inside a frame");
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length is < 0 or > MaxFrameBytes)
        {
            throw new InvalidDataException($"a data frame of {length} bytes");
        }

        var body = new byte[length];
        await stream.ReadExactlyAsync(body, cancellationToken); // an end inside the frame: EndOfStreamException, an IOException
        return DataFrame.Parser.ParseFrom(body);
    }
}

/// <summary>
/// One direct assignment's side of the data socket: what the worker sends its owner
/// (results, credits), queued until the owner is connected and then written in order by
/// one writer, which sends whatever is queued together (a result and the credit after it
/// go in one write). Closing it ends the connection once everything queued is written.
/// </summary>
internal sealed class DataLease(string token)
{
    private readonly Channel<DataFrame> _frames = Channel.CreateUnbounded<DataFrame>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _served;

    /// <summary>Completes once the connection has ended after <see cref="Close"/> (or at Close, when no owner ever connected).</summary>
    public Task Written => _written.Task;

    public bool Matches(string candidate) =>
        candidate.Length == token.Length
        && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(candidate), System.Text.Encoding.UTF8.GetBytes(token));

    public void Post(DataFrame frame) => _frames.Writer.TryWrite(frame);

    /// <summary>No more frames: the connection ends after the queued ones.</summary>
    public void Close()
    {
        _frames.Writer.TryComplete();
        if (Interlocked.Exchange(ref _served, 1) == 0)
        {
            _written.TrySetResult(); // nobody connected: nothing to deliver
        }
    }

    /// <summary>Serves the owner's connection: its task frames go to <paramref name="dispatch"/>; ends when the lease closes or the owner disconnects.</summary>
    public async Task ServeAsync(Stream stream, Action<TaskChunk> dispatch, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _served, 1) != 0)
        {
            return; // one owner connection per lease (or closed already)
        }

        using var ended = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reading = ReadAsync(stream, dispatch, ended.Token);
        try
        {
            await WriteAsync(stream, ended.Token);
        }
        catch (Exception exception) when (exception is IOException or OperationCanceledException or SocketException)
        {
            // The owner went away: the host ends the pool.
        }
        finally
        {
            await ended.CancelAsync();
            try
            {
                await reading;
            }
            catch (Exception exception) when (exception is IOException or OperationCanceledException or InvalidDataException or InvalidProtocolBufferException or SocketException)
            {
                // The connection is over either way.
            }

            _written.TrySetResult();
        }
    }

    private async Task WriteAsync(Stream stream, CancellationToken cancellationToken)
    {
        var output = new BufferedStream(stream, 64 * 1024);
        var header = new byte[4];
        while (await _frames.Reader.WaitToReadAsync(cancellationToken))
        {
            while (_frames.Reader.TryRead(out var frame))
            {
                BinaryPrimitives.WriteInt32LittleEndian(header, frame.CalculateSize());
                output.Write(header);
                frame.WriteTo(output);
            }

            await output.FlushAsync(cancellationToken);
        }
    }

    private static async Task ReadAsync(Stream stream, Action<TaskChunk> dispatch, CancellationToken cancellationToken)
    {
        while (await DataChannel.ReadFrameAsync(stream, cancellationToken) is { } frame)
        {
            if (frame.FrameCase == DataFrame.FrameOneofCase.Task)
            {
                dispatch(frame.Task);
            }
        }
    }
}
