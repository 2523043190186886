using Bridge.Contracts.V1;

namespace Bridge.Worker.Hosting;

/// <summary>
/// Sends text written by user code (Python's sys.stdout/sys.stderr, a kernel's Console)
/// to the client's terminal as OutputText: over a direct pool's data socket while the
/// worker serves one (in order with its results), else through the host.
/// </summary>
internal sealed class OutputForwarder(Outbox outbox)
{
    public const int StandardOutput = 1;
    public const int StandardError = 2;

    private readonly int _pid = Environment.ProcessId;
    private volatile DataLease? _lease;

    /// <summary>The direct assignment whose owner receives the output; null: the host.</summary>
    public DataLease? Lease
    {
        get => _lease;
        set => _lease = value;
    }

    /// <summary>Forwards <paramref name="text"/> written to stream 1 (stdout) or 2 (stderr).</summary>
    public void Write(int stream, string text)
    {
        if (text.Length == 0)
        {
            return;
        }

        var output = new OutputText { Stream = stream, Text = text, WorkerPid = _pid };
        if (_lease is { } lease)
        {
            lease.Post(new DataFrame { Output = output });
        }
        else
        {
            outbox.Post(new WorkerMessage { Output = output });
        }
    }

    /// <summary>Points .NET's Console.Out/Console.Error (kernels' output) at the host.</summary>
    public void RedirectConsole()
    {
        Console.SetOut(new ForwardingTextWriter(this, StandardOutput));
        Console.SetError(new ForwardingTextWriter(this, StandardError));
    }
}

/// <summary>
/// A line-buffered TextWriter over <see cref="OutputForwarder"/>: one message per line
/// (or per flush), not per Write call. Console.SetOut wraps it in a synchronized writer,
/// so kernel threads writing at once do not interleave within a line.
/// </summary>
internal sealed class ForwardingTextWriter(OutputForwarder forwarder, int stream) : TextWriter(System.Globalization.CultureInfo.InvariantCulture)
{
    // Long output without newlines still goes out in pieces of this size.
    private const int MaxBuffered = 8192;

    private readonly System.Text.StringBuilder _buffer = new();

    public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;

    public override void Write(char value)
    {
        _buffer.Append(value);
        if (value == '\n' || _buffer.Length >= MaxBuffered)
        {
            Flush();
        }
    }

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        _buffer.Append(value);
        if (value.Contains('\n', StringComparison.Ordinal) || _buffer.Length >= MaxBuffered)
        {
            Flush();
        }
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void Flush()
    {
        if (_buffer.Length > 0)
        {
            forwarder.Write(stream, _buffer.ToString());
            _buffer.Clear();
        }
    }
}
