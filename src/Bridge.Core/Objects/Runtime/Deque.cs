namespace Bridge.Core.Objects.Runtime;

/// <summary>
/// A ring buffer that grows at the back and can also push at the front (leased queue
/// items go back to the head when their session dies). Capacity is a power of two.
/// </summary>
internal sealed class Deque<T>
{
    private const int InitialCapacity = 16;

    // A queue that once held a burst keeps a big buffer only while it holds items.
    private const int ShrinkAbove = 4096;

    private T[] _buffer = new T[InitialCapacity];
    private int _head;
    private int _count;

    public int Count => _count;

    public void PushBack(T item)
    {
        if (_count == _buffer.Length)
        {
            Grow();
        }

        _buffer[(_head + _count) & (_buffer.Length - 1)] = item;
        _count++;
    }

    public void PushFront(T item)
    {
        if (_count == _buffer.Length)
        {
            Grow();
        }

        _head = (_head - 1) & (_buffer.Length - 1);
        _buffer[_head] = item;
        _count++;
    }

    public T PopFront()
    {
        if (_count == 0)
        {
            throw new InvalidOperationException("the deque is empty");
        }

        var item = _buffer[_head];
        _buffer[_head] = default!;
        _head = (_head + 1) & (_buffer.Length - 1);
        _count--;
        if (_count == 0)
        {
            Reset();
        }

        return item;
    }

    public T PopBack()
    {
        if (_count == 0)
        {
            throw new InvalidOperationException("the deque is empty");
        }

        var index = (_head + _count - 1) & (_buffer.Length - 1);
        var item = _buffer[index];
        _buffer[index] = default!;
        _count--;
        if (_count == 0)
        {
            Reset();
        }

        return item;
    }

    public void Clear()
    {
        Array.Clear(_buffer);
        _count = 0;
        Reset();
    }

    private void Reset()
    {
        _head = 0;
        if (_buffer.Length > ShrinkAbove)
        {
            _buffer = new T[InitialCapacity];
        }
    }

    private void Grow()
    {
        var bigger = new T[_buffer.Length * 2];
        var firstPart = Math.Min(_count, _buffer.Length - _head);
        Array.Copy(_buffer, _head, bigger, 0, firstPart);
        Array.Copy(_buffer, 0, bigger, firstPart, _count - firstPart);
        _buffer = bigger;
        _head = 0;
    }
}
