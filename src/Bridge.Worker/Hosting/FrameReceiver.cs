using System.Net.Sockets;
using Bridge.Contracts.V1;

namespace Bridge.Worker.Hosting;

/// <summary>
/// The frames an owner sends on a data socket, read as many per <c>recv</c> as it
/// brings: one call per wake-up, where reading the header and then the body took two.
/// The socket stays in blocking mode (see <see cref="DataChannel"/>).
/// </summary>
internal sealed class FrameReceiver(Socket socket)
{
    private const int DefaultBufferBytes = 64 * 1024;

    private byte[] _buffer = new byte[DefaultBufferBytes];
    private int _start;
    private int _end;

    /// <summary>
    /// Receives once (blocking until bytes arrive, or the end of the stream) and hands each
    /// whole frame to <paramref name="handle"/>, in order; a partial frame waits for the next
    /// call. False at a clean end of the stream; <see cref="InvalidDataException"/> for an
    /// end inside a frame or a frame over <see cref="DataChannel.MaxFrameBytes"/>.
    /// </summary>
    public bool ReceiveOnce(Action<DataFrame> handle)
    {
        if (_end == _buffer.Length)
        {
            Compact(_buffer);
        }

        var read = socket.Receive(_buffer.AsSpan(_end));
        if (read == 0)
        {
            return _end == _start ? false : throw new InvalidDataException("the data socket ended inside a frame");
        }

        _end += read;
        while (_end - _start >= 4)
        {
            var length = DataChannel.CheckedLength(_buffer.AsSpan(_start, 4), DataChannel.MaxFrameBytes);
            if (_end - _start - 4 < length)
            {
                MakeRoomFor(4 + length);
                break;
            }

            var frame = DataFrame.Parser.ParseFrom(_buffer, _start + 4, length);
            _start += 4 + length;
            handle(frame);
        }

        if (_start == _end)
        {
            _start = _end = 0;
            if (_buffer.Length > DefaultBufferBytes)
            {
                _buffer = new byte[DefaultBufferBytes]; // a large frame's buffer is not kept
            }
        }

        return true;
    }

    /// <summary>Makes the partial frame at the start fit whole: moved to the front, into a larger buffer if needed.</summary>
    private void MakeRoomFor(int frameBytes)
    {
        if (_buffer.Length - _start >= frameBytes)
        {
            return;
        }

        Compact(frameBytes > _buffer.Length ? new byte[frameBytes] : _buffer);
    }

    private void Compact(byte[] target)
    {
        _buffer.AsSpan(_start, _end - _start).CopyTo(target);
        _end -= _start;
        _start = 0;
        _buffer = target;
    }
}
