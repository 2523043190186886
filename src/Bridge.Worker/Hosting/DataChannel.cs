using System.Buffers.Binary;
using System.Net.Sockets;
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
/// DataFrame (protos/bridge/v1/execution.proto). A cluster host's worker also listens on
/// TCP (<paramref name="tcp"/>), for owners on other machines; the token guards both.
/// A worker with an interpreter has its main thread (<paramref name="reader"/>) read the
/// owner's frames while idle.
/// </summary>
internal sealed class DataChannel(string path, System.Net.IPEndPoint? tcp, Python.PythonMainThread? reader, ILogger logger) : IDisposable
{
    // Frames larger than this are refused (the host's payload limit is 64 MiB by default).
    public const int MaxFrameBytes = 1 << 30;

    // The first frame, before the connection has shown its token: a token frame is ~40
    // bytes, so a stranger cannot make the worker allocate (or wait for) a large one.
    public const int MaxTokenFrameBytes = 1024;

    // How long a connection may wait for its assignment (the host sends it before it
    // answers the pool's creation, so this covers only the race between the two sockets).
    private static readonly TimeSpan AssignmentWait = TimeSpan.FromSeconds(10);

    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly Socket? _tcpListener = tcp is null ? null : new(tcp.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
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
        if (_tcpListener is not null)
        {
            _tcpListener.Bind(tcp!);
            _tcpListener.Listen(16);
        }
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
    public Task AcceptAsync(Action<TaskChunk> dispatch, CancellationToken cancellationToken) =>
        _tcpListener is null
            ? AcceptAsync(_listener, dispatch, cancellationToken)
            : Task.WhenAll(AcceptAsync(_listener, dispatch, cancellationToken), AcceptAsync(_tcpListener, dispatch, cancellationToken));

    private async Task AcceptAsync(Socket listener, Action<TaskChunk> dispatch, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var socket = await listener.AcceptAsync(cancellationToken);
                if (socket.ProtocolType == ProtocolType.Tcp)
                {
                    socket.NoDelay = true; // a result is one small write, sent at once
                }

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
        _tcpListener?.Dispose();
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
            // Read on a thread of its own, as every later frame is: one async operation
            // would put the socket in non-blocking mode for good, and .NET then emulates
            // blocking reads through its epoll thread (a second wake-up per chunk).
            // A connection that does not show its token in time is dropped (it would hold
            // this thread for good otherwise).
            socket.ReceiveTimeout = (int)AssignmentWait.TotalMilliseconds;
            var first = await Task.Factory.StartNew(
                () => ReadFrame(stream, MaxTokenFrameBytes), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            if (first?.FrameCase != DataFrame.FrameOneofCase.Token || await LeaseForAsync(first.Token, cancellationToken) is not { } lease)
            {
                Log.DataConnectionRefused(logger);
                return;
            }

            socket.ReceiveTimeout = 0;

            await lease.ServeAsync(socket, stream, dispatch, reader, cancellationToken);
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

    /// <summary>One frame, or null at a clean end of stream (blocks the calling thread).</summary>
    public static DataFrame? ReadFrame(Stream stream, int maxBytes = MaxFrameBytes)
    {
        Span<byte> header = stackalloc byte[4];
        var read = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        if (read == 0)
        {
            return null;
        }

        if (read < header.Length)
        {
            throw new InvalidDataException("the data socket ended inside a frame");
        }

        var body = new byte[CheckedLength(header, maxBytes)];
        stream.ReadExactly(body);
        return DataFrame.Parser.ParseFrom(body);
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

        var body = new byte[CheckedLength(header, MaxFrameBytes)];
        await stream.ReadExactlyAsync(body, cancellationToken); // an end inside the frame: EndOfStreamException, an IOException
        return DataFrame.Parser.ParseFrom(body);
    }

    /// <summary>A frame's length from its 4-byte header; <see cref="InvalidDataException"/> when negative or over <paramref name="maxBytes"/>.</summary>
    internal static int CheckedLength(ReadOnlySpan<byte> header, int maxBytes)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(header);
        return length < 0 || length > maxBytes ? throw new InvalidDataException($"a data frame of {length} bytes") : length;
    }
}

/// <summary>
/// One direct assignment's side of the data socket: what the worker sends its owner
/// (results, credits, output). Frames posted before the owner connects wait in order;
/// after that each is written at once by the thread that posts it (the interpreter's main
/// thread for a Python result, a kernel thread for a kernel's), so a result leaves without
/// a hop through the thread pool. A slow reader holds the poster back (flow control); an
/// owner that went away makes writes no-ops. Closing it ends the connection.
/// </summary>
internal sealed class DataLease(string token)
{
    private readonly Lock _gate = new();
    private readonly Queue<DataFrame> _backlog = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly byte[] _header = new byte[4];
    private Stream? _owner;
    private bool _broken;
    private int _holds;
    private int _served;

    /// <summary>Completes once the connection has ended after <see cref="Close"/> (or at Close, when no owner ever connected).</summary>
    public Task Written => _written.Task;

    public bool Matches(string candidate) =>
        candidate.Length == token.Length
        && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(candidate), System.Text.Encoding.UTF8.GetBytes(token));

    /// <summary>Sends <paramref name="frame"/> now (or once the owner connects); blocks while the owner's socket is full.</summary>
    public void Post(DataFrame frame)
    {
        lock (_gate)
        {
            if (_closed.Task.IsCompleted || _broken)
            {
                return;
            }

            if (_owner is null)
            {
                _backlog.Enqueue(frame);
                return;
            }

            WriteUnderLock(_owner, frame);
            if (_holds == 0)
            {
                FlushUnderLock(_owner);
            }
        }
    }

    /// <summary>
    /// Until the matching <see cref="Unhold"/>, posted frames are written but not sent, so
    /// that a result and the credit that follows it leave in one write (one wake-up of
    /// the owner's reader, not two).
    /// </summary>
    public void Hold()
    {
        lock (_gate)
        {
            _holds++;
        }
    }

    /// <summary>Ends a <see cref="Hold"/>: what was posted meanwhile is sent.</summary>
    public void Unhold()
    {
        lock (_gate)
        {
            if (--_holds == 0 && _owner is not null)
            {
                FlushUnderLock(_owner);
            }
        }
    }

    /// <summary>No more frames: the connection ends once everything posted is sent.</summary>
    public void Close()
    {
        lock (_gate)
        {
            _closed.TrySetResult();
        }

        if (Interlocked.Exchange(ref _served, 1) == 0)
        {
            _written.TrySetResult(); // nobody connected: nothing to deliver
        }
    }

    /// <summary>Serves the owner's connection: its task frames go to <paramref name="dispatch"/>; ends when the lease closes or the owner disconnects.</summary>
    public async Task ServeAsync(Socket socket, Stream stream, Action<TaskChunk> dispatch, Python.PythonMainThread? reader, CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _served, 1) != 0)
        {
            return; // one owner connection per lease (or closed already)
        }

        var output = new BufferedStream(stream, 64 * 1024);
        lock (_gate)
        {
            while (_backlog.TryDequeue(out var frame))
            {
                WriteUnderLock(output, frame);
            }

            FlushUnderLock(output);
            _owner = output;
        }

        using var ended = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var receiver = new FrameReceiver(socket);
        void Handle(DataFrame frame)
        {
            if (frame.FrameCase == DataFrame.FrameOneofCase.Task)
            {
                dispatch(frame.Task);
            }
        }

        // The interpreter's main thread reads while idle (no hand-over per chunk); without
        // one, a thread of its own blocks in recv: an async read took two wake-ups per
        // chunk (the socket engine's epoll thread, then a thread-pool thread), ~60 µs of CPU.
        var reading = reader is { CanReadWhileIdle: true }
            ? reader.ReadWhileIdle(socket, () => receiver.ReceiveOnce(Handle))
            : Task.Factory.StartNew(
                () => { while (receiver.ReceiveOnce(Handle)) { } },
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        using var unblock = ended.Token.Register(static state => ShutdownReceive((Socket)state!), socket);
        try
        {
            await Task.WhenAny(reading, _closed.Task.WaitAsync(cancellationToken));
        }
        finally
        {
            lock (_gate)
            {
                // A result posted under a Hold that has not ended yet (its credit would
                // follow) goes out now: nothing posted after Close is sent.
                if (_owner is not null)
                {
                    FlushUnderLock(_owner);
                }

                _owner = null; // later posts (after Close) go nowhere
            }

            await ended.CancelAsync();
            try
            {
                await reading;
            }
            catch (Exception exception) when (exception is IOException or OperationCanceledException or InvalidDataException or InvalidProtocolBufferException or SocketException or ObjectDisposedException)
            {
                // The connection is over either way.
            }

            _written.TrySetResult();
        }
    }

    private void WriteUnderLock(Stream output, DataFrame frame)
    {
        if (_broken)
        {
            return;
        }

        try
        {
            BinaryPrimitives.WriteInt32LittleEndian(_header, frame.CalculateSize());
            output.Write(_header);
            frame.WriteTo(output);
        }
        catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException)
        {
            _broken = true; // the owner went away: the host ends the pool
        }
    }

    private void FlushUnderLock(Stream output)
    {
        if (_broken)
        {
            return;
        }

        try
        {
            output.Flush();
        }
        catch (Exception exception) when (exception is IOException or SocketException or ObjectDisposedException)
        {
            _broken = true;
        }
    }

    private static void ShutdownReceive(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Receive); // wakes the blocked reader: recv returns 0
        }
        catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
        {
            // Ended already.
        }
    }

}
