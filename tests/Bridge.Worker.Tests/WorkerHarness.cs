using System.Globalization;
using System.Text;
using Bridge.Contracts.V1;
using Google.Protobuf;
using MessagePack;

namespace Bridge.Worker.Tests;

/// <summary>A fake host, a real worker process connected to it, and the worker's stream.</summary>
public sealed class WorkerHarness : IAsyncDisposable
{
    public const string Token = "test-token-0123456789";

    private WorkerHarness(FakeWorkHost host, WorkerProcess worker, WorkerConnection connection, WorkerHello hello)
    {
        Host = host;
        Worker = worker;
        Connection = connection;
        Hello = hello;
    }

    public FakeWorkHost Host { get; }

    public WorkerProcess Worker { get; }

    public WorkerConnection Connection { get; }

    public WorkerHello Hello { get; }

    /// <summary>Starts a host and a worker (with the venv's Python when <paramref name="python"/> is given) and reads its Hello.</summary>
    public static async Task<WorkerHarness> StartAsync(PythonPayloads? python, CancellationToken cancellationToken, int kernelSlots = 2)
    {
        var host = await FakeWorkHost.StartAsync(cancellationToken);
        var arguments = new List<string> { "--host", host.Address, "--worker-token", Token, "--kernel-slots", kernelSlots.ToString(CultureInfo.InvariantCulture) };
        var worker = python is null ? WorkerProcess.Start(arguments) : WorkerProcess.StartInPython(python.Executable, arguments);
        try
        {
            var accepted = host.AcceptAsync(cancellationToken);
            if (await Task.WhenAny(accepted, worker.Exited) != accepted)
            {
                throw new InvalidOperationException($"Bridge.Worker exited before connecting; log:\n{worker.Log}");
            }

            var connection = await accepted;
            var hello = await connection.NextAsync(cancellationToken);
            Assert.True(hello?.MessageCase == WorkerMessage.MessageOneofCase.Hello, $"expected Hello, got {hello}; worker log:\n{worker.Log}");
            return new WorkerHarness(host, worker, connection, hello!.Hello);
        }
        catch
        {
            await worker.DisposeAsync();
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a Python worker, assigns it the venv's environment (plus <paramref name="configure"/>) and reads its first Ready.</summary>
    public static async Task<(WorkerHarness Harness, WorkerReady Ready)> StartAssignedAsync(
        PythonPayloads python, CancellationToken cancellationToken, Action<Assignment>? configure = null)
    {
        var harness = await StartAsync(python, cancellationToken);
        try
        {
            var assignment = Assignment(python);
            configure?.Invoke(assignment);
            await harness.Connection.SendAsync(new WorkerCommand { Assign = assignment }, cancellationToken);
            var ready = await harness.Connection.NextAsync(cancellationToken);
            Assert.True(ready?.MessageCase == WorkerMessage.MessageOneofCase.Ready, $"expected Ready, got {ready}; {harness.Connection}; worker log:\n{harness.Worker.Log}");
            return (harness, ready!.Ready);
        }
        catch
        {
            await harness.DisposeAsync();
            throw;
        }
    }

    public static Assignment Assignment(PythonPayloads python)
    {
        var environment = new PythonEnvironment { Executable = python.Executable, WorkingDirectory = Path.GetTempPath() };
        environment.SysPath.AddRange(python.SysPath);
        return new Assignment { PoolId = "pool-1", Python = environment, Name = "TestPoolWorker-1" };
    }

    public static TaskChunk PythonChunk(long id, byte[] function, CallStyle style, IEnumerable<byte[]> items)
    {
        var chunk = new TaskChunk { TaskId = id, Function = new Callable { Python = ByteString.CopyFrom(function) }, Style = style };
        chunk.Items.AddRange(items.Select(ByteString.CopyFrom));
        return chunk;
    }

    public static TaskChunk KernelChunk(long id, string kernel, CallStyle style, IEnumerable<byte[]> items)
    {
        var chunk = new TaskChunk { TaskId = id, Function = new Callable { Kernel = kernel }, Style = style };
        chunk.Items.AddRange(items.Select(ByteString.CopyFrom));
        return chunk;
    }

    /// <summary>Sends a chunk and returns its result (skipping credits and collecting output).</summary>
    public async Task<TaskResult> RunAsync(TaskChunk chunk, CancellationToken cancellationToken)
    {
        await Connection.SendAsync(new WorkerCommand { Task = chunk }, cancellationToken);
        var message = await Connection.NextAsync(WorkerMessage.MessageOneofCase.Result, cancellationToken);
        Assert.Equal(chunk.TaskId, message.Result.TaskId);
        return message.Result;
    }

    /// <summary>Sends Shutdown and expects a clean exit: the stream completed and exit code 0.</summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        await Connection.SendAsync(new WorkerCommand { Shutdown = true }, cancellationToken);
        while (await Connection.NextAsync(cancellationToken) is { } message)
        {
            Assert.True(message.MessageCase == WorkerMessage.MessageOneofCase.Ready, $"unexpected {message} after Shutdown");
        }

        Assert.Equal(0, await Worker.WaitForExitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(Connection.RequestEnded, "the worker exits after completing its stream");
    }

    /// <summary>A MessagePack value rendered like Python's repr (tuples from ext 2), for assertions.</summary>
    public static string Repr(ByteString value)
    {
        var reader = new MessagePackReader(value.Memory);
        var text = new StringBuilder();
        Render(ref reader, text);
        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await Worker.DisposeAsync();
        await Host.DisposeAsync();
    }

    private static void Render(ref MessagePackReader reader, StringBuilder text)
    {
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Nil:
                reader.ReadNil();
                text.Append("None");
                break;
            case MessagePackType.Boolean:
                text.Append(reader.ReadBoolean() ? "True" : "False");
                break;
            case MessagePackType.Integer:
                text.Append(reader.ReadInt64().ToString(CultureInfo.InvariantCulture));
                break;
            case MessagePackType.Float:
                text.Append(reader.ReadDouble().ToString("R", CultureInfo.InvariantCulture));
                break;
            case MessagePackType.String:
                text.Append('\'').Append(reader.ReadString()).Append('\'');
                break;
            case MessagePackType.Binary:
                text.Append("b'").Append(Convert.ToHexStringLower(System.Buffers.BuffersExtensions.ToArray(reader.ReadBytes()!.Value))).Append('\'');
                break;
            case MessagePackType.Array:
                RenderSequence(ref reader, text, '[', ']');
                break;
            case MessagePackType.Map:
                var count = reader.ReadMapHeader();
                text.Append('{');
                for (var i = 0; i < count; i++)
                {
                    text.Append(i > 0 ? ", " : "");
                    Render(ref reader, text);
                    text.Append(": ");
                    Render(ref reader, text);
                }

                text.Append('}');
                break;
            case MessagePackType.Extension:
                var header = reader.ReadExtensionFormatHeader();
                var body = reader.ReadRaw(header.Length);
                if (header.TypeCode == 2)
                {
                    var inner = new MessagePackReader(body);
                    RenderSequence(ref inner, text, '(', ')');
                }
                else
                {
                    text.Append("<ext ").Append(header.TypeCode).Append('>');
                }

                break;
            default:
                throw new InvalidOperationException($"unexpected MessagePack type {reader.NextMessagePackType}");
        }
    }

    private static void RenderSequence(ref MessagePackReader reader, StringBuilder text, char open, char close)
    {
        var count = reader.ReadArrayHeader();
        text.Append(open);
        for (var i = 0; i < count; i++)
        {
            text.Append(i > 0 ? ", " : "");
            Render(ref reader, text);
        }

        text.Append(count == 1 && open == '(' ? ",)" : close.ToString());
    }
}
