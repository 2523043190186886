using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Bridge.Worker.Python;

/// <summary>What the interpreter's main thread is asked to do (gilbridge._worker.serve handles each).</summary>
internal enum PythonCall
{
    /// <summary>Apply a client environment (JSON: sys_path, working_directory, environment, main_path, argv).</summary>
    Prepare = 1,

    /// <summary>Join a pool: an Assignment (protobuf): the process name and the initializer.</summary>
    Assign = 2,

    /// <summary>Run a TaskChunk (protobuf); the answer is a TaskResult (protobuf).</summary>
    RunChunk = 3,

    /// <summary>Run a RUN_PROCESS TaskChunk; the answer is the exit code (ASCII digits).</summary>
    RunProcess = 4,

    /// <summary>Leave the pool: flush what its tasks left buffered.</summary>
    Release = 5,

    /// <summary>Run the atexit handlers before a clean exit.</summary>
    AtExit = 6,

    /// <summary>Flush the forwarded stdout/stderr.</summary>
    FlushOutput = 7,
}

/// <summary>
/// The interpreter's main thread, seen from .NET: a queue of calls it serves one at a
/// time. The worker process is the client's own interpreter; after loading .NET it loops
/// in gilbridge's worker code, asking <see cref="Next"/> for a call (blocking in .NET,
/// without the GIL: ctypes released it) and answering with <see cref="Complete"/>. Python
/// code thus runs on the main thread of the client's executable at its full speed, and no
/// .NET thread ever takes the GIL. Calls and answers are bytes; nothing else crosses.
/// While it has no call to run, the main thread also reads a direct pool's data socket
/// (<see cref="ReadWhileIdle"/>): a chunk then reaches the interpreter with no thread
/// hand-over at all, where a reader thread's wake-up of the main thread cost ~40 µs of
/// CPU and a scheduling delay per chunk on this class of machine.
/// </summary>
internal sealed class PythonMainThread
{
    // Not a BlockingCollection: its semaphore spins before it blocks, and the spinning
    // main thread took the core the .NET thread queueing the next call needed. An object,
    // not a Lock: Monitor.Wait/Pulse block and wake without spinning.
    private readonly object _gate = new();
    private readonly Queue<Request> _requests = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly WakeableWait? _wait = WakeableWait.TryCreate();

    // Guarded by _gate: the socket read while idle, and whether the main thread is blocked
    // in _wait (a new call or source must then wake it through the eventfd).
    private IdleSource? _source;
    private bool _waitingOnSocket;

    // Touched only by the main thread, between Next and Complete.
    private Request? _current;
    private unsafe byte* _payload;

    /// <summary>Completes when the main thread first asks for work (its loop is running).</summary>
    public Task Ready => _ready.Task;

    /// <summary>
    /// Queues <paramref name="call"/>; completes with the answer and how long the main
    /// thread spent on it (not the wait behind earlier calls), or fails with
    /// <see cref="PythonFailure"/> when the Python side raised.
    /// </summary>
    public Task<PythonAnswer> CallAsync(PythonCall call, byte[] payload, CancellationToken cancellationToken)
    {
        var request = new Request(call, payload);
        if (cancellationToken.IsCancellationRequested)
        {
            request.Completion.TrySetCanceled(cancellationToken);
            return request.Completion.Task;
        }

        // A call cancelled while queued is skipped; one already running finishes.
        var registration = cancellationToken.Register(static state => ((Request)state!).Completion.TrySetCanceled(), request);
        _ = request.Completion.Task.ContinueWith(_ => registration.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        lock (_gate)
        {
            _requests.Enqueue(request);
            WakeUnderLock();
        }

        return request.Completion.Task;
    }

    /// <summary>Whether <see cref="ReadWhileIdle"/> is available (else the caller reads on a thread of its own).</summary>
    public bool CanReadWhileIdle => _wait is not null;

    /// <summary>
    /// Has the main thread read <paramref name="socket"/> whenever it has no call to run:
    /// <paramref name="receiveOnce"/> runs on it (without the GIL) each time the socket is
    /// readable, and may queue calls. Completes when <paramref name="receiveOnce"/> returns
    /// false (the end of the stream), faults with what it threw, or completes when another
    /// socket takes its place: one socket at a time, the newest. (A released pool's
    /// connection is shut down before the worker reports the release, but the main thread
    /// may not have seen its end yet when the next pool's owner connects.) A long call
    /// delays the reads (and the end's notice) until it returns.
    /// </summary>
    public Task ReadWhileIdle(System.Net.Sockets.Socket socket, Func<bool> receiveOnce)
    {
        if (_wait is null)
        {
            throw new PlatformNotSupportedException("the main thread cannot wait on a socket here");
        }

        var source = new IdleSource((int)socket.Handle, receiveOnce);
        IdleSource? replaced;
        lock (_gate)
        {
            replaced = _source;
            _source = source;
            WakeUnderLock();
        }

        replaced?.Ended.TrySetResult();
        return source.Ended.Task;
    }

    private void WakeUnderLock()
    {
        Monitor.Pulse(_gate);
        if (_waitingOnSocket)
        {
            _wait!.Wake();
        }
    }

    /// <summary>
    /// On the main thread: blocks for the next call and returns its kind, with its payload
    /// in unmanaged memory valid until <see cref="Complete"/>.
    /// </summary>
    public unsafe int Next(out byte* data, out int length)
    {
        _ready.TrySetResult();
        FreePayload();
        var request = NextRequest();
        _current = request;
        request.Started = Stopwatch.GetTimestamp();
        length = request.Payload.Length;
        _payload = (byte*)NativeMemory.Alloc((nuint)Math.Max(1, length));
        request.Payload.CopyTo(new Span<byte>(_payload, length));
        data = _payload;
        return (int)request.Call;
    }

    /// <summary>On the main thread: the answer to the call <see cref="Next"/> returned (status 0: success, else a failure).</summary>
    public void Complete(int status, ReadOnlySpan<byte> answer)
    {
        var request = _current;
        _current = null;
        FreePayload();
        if (request is null)
        {
            return;
        }

        if (status == 0)
        {
            request.Completion.TrySetResult(new PythonAnswer(answer.ToArray(), Stopwatch.GetElapsedTime(request.Started)));
        }
        else
        {
            request.Completion.TrySetException(PythonFailure.Parse(answer));
        }
    }

    /// <summary>The next call to run; meanwhile the idle source's socket is read as it becomes readable.</summary>
    private Request NextRequest()
    {
        while (true)
        {
            IdleSource? source;
            lock (_gate)
            {
                while (_requests.TryDequeue(out var request))
                {
                    if (!request.Completion.Task.IsCompleted) // cancelled while queued: skipped
                    {
                        return request;
                    }
                }

                source = _source;
                if (source is null)
                {
                    Monitor.Wait(_gate);
                    continue;
                }

                _waitingOnSocket = true;
            }

            var readable = _wait!.WaitForSocket(source.Fd);
            lock (_gate)
            {
                _waitingOnSocket = false;
            }

            if (readable)
            {
                Receive(source);
            }
        }
    }

    private void Receive(IdleSource source)
    {
        Exception? failure = null;
        try
        {
            if (source.ReceiveOnce())
            {
                return;
            }
        }
        catch (Exception exception)
        {
            failure = exception;
        }

        lock (_gate)
        {
            if (_source == source)
            {
                _source = null;
            }
        }

        if (failure is null)
        {
            source.Ended.TrySetResult();
        }
        else
        {
            source.Ended.TrySetException(failure);
        }
    }

    private unsafe void FreePayload()
    {
        if (_payload is not null)
        {
            NativeMemory.Free(_payload);
            _payload = null;
        }
    }

    private sealed record IdleSource(int Fd, Func<bool> ReceiveOnce)
    {
        // Continuations elsewhere: the main thread must get back to its calls.
        public TaskCompletionSource Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record Request(PythonCall Call, byte[] Payload)
    {
        // Continuations run inline, on the main thread inside Complete (it holds no GIL
        // there): the result goes out without a hop through the thread pool. They only
        // queue messages and grant credits.
        public TaskCompletionSource<PythonAnswer> Completion { get; } = new();

        public long Started { get; set; }
    }
}

/// <summary>An answer from the main thread and the time it took there.</summary>
internal readonly record struct PythonAnswer(byte[] Bytes, TimeSpan Elapsed);

/// <summary>A Python exception raised outside user calls, with its formatted traceback.</summary>
internal sealed class PythonFailure(string type, string message, string traceback) : Exception(message)
{
    public string PythonType { get; } = type;

    public string PythonTraceback { get; } = traceback;

    /// <summary>Reads the Python side's failure answer: type, message and traceback, UTF-8, NUL-separated.</summary>
    public static PythonFailure Parse(ReadOnlySpan<byte> answer)
    {
        var parts = System.Text.Encoding.UTF8.GetString(answer).Split('\0', 3);
        return parts.Length == 3
            ? new PythonFailure(parts[0], parts[1], parts[2])
            : new PythonFailure("Exception", parts[0], parts[0]);
    }
}
