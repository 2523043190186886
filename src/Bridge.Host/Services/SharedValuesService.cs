using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Host.Hosting;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Services;

internal sealed class SharedValuesService(IGrainFactory grains, IOptions<BridgeHostOptions> options) : SharedValues.SharedValuesBase
{
    private readonly long _maxPayloadBytes = options.Value.MaxPayloadBytes;

    public override async Task<ValueInfo> CreateValue(CreateValueRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        var name = Requests.NameToOpen(request.Name, request.Mode);
        var mode = Requests.Mode(request.Mode, request.Name);
        var lockKind = LockKind.RLock;
        if (mode != Core.Objects.OpenMode.Attach)
        {
            if (request.Length < 1)
            {
                throw BridgeException.InvalidArgument($"length must be >= 1 (got {request.Length})");
            }

            var size = Typecodes.ItemSize(request.Typecode) * request.Length;
            if (size > _maxPayloadBytes || request.Initial.Length > _maxPayloadBytes)
            {
                throw BridgeException.TooLarge($"a value of {size} bytes exceeds the limit of {_maxPayloadBytes} bytes");
            }

            if (!string.IsNullOrEmpty(request.LockName))
            {
                ObjectNames.Validate(request.LockName, creating: false);
                lockKind = Requests.LockKindOf(request.LockKind);
            }
        }

        var descriptor = await grains.GetGrain<IValueGrain>(name).Open(
            sessionId, mode, request.Typecode, request.Length, request.IsArray, Requests.Array(request.Initial), request.LockName, lockKind);
        return new ValueInfo
        {
            Name = name,
            Typecode = descriptor.Typecode,
            ItemSize = descriptor.ItemSize,
            Length = descriptor.Length,
            IsArray = descriptor.IsArray,
            LockName = descriptor.LockName,
            LockKind = Requests.WireKind(descriptor.LockKind),
            Segment = descriptor.SegmentPath,
        };
    }

    public override async Task<ReadReply> Read(ReadRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        var data = await grains.GetGrain<IValueGrain>(name).Read(sessionId, request.Index, request.Count);
        return new ReadReply { Data = UnsafeByteOperations.UnsafeWrap(data) };
    }

    public override async Task<WriteReply> Write(WriteRequest request, ServerCallContext context)
    {
        var (sessionId, name) = Requests.Target(request.Target);
        if (request.Data.Length > _maxPayloadBytes)
        {
            throw BridgeException.TooLarge($"a write of {request.Data.Length} bytes exceeds the limit of {_maxPayloadBytes} bytes");
        }

        await grains.GetGrain<IValueGrain>(name).Write(sessionId, request.Index, Requests.Array(request.Data));
        return new WriteReply();
    }
}
