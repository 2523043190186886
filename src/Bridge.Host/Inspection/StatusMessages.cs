using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Host.Services;
using CoreObjectStatus = Bridge.Core.Objects.ObjectStatus;
using WireObjectStatus = Bridge.Contracts.V1.ObjectStatus;

namespace Bridge.Host.Inspection;

/// <summary>Objects' status in the contract's terms (sessions.proto, ObjectStatus).</summary>
internal static class StatusMessages
{
    public static WireObjectStatus Object(CoreObjectStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        var message = new WireObjectStatus
        {
            Name = status.Address.Name,
            Anonymous = ObjectNames.IsAnonymous(status.Address.Name),
            Family = FamilyName(status.Address.Family),
            Sessions = status.Sessions,
            Waiters = status.Waiters,
        };
        switch (status.Detail)
        {
            case LockDetail l:
                message.Kind = Requests.WireKind(l.Kind);
                message.Lock = new LockStatus { Value = l.Value, InitialValue = l.InitialValue, Depth = l.Depth, Cached = l.Cached };
                message.Lock.HolderSessions.AddRange(l.HolderSessions.Order(StringComparer.Ordinal));
                break;
            case EventDetail e:
                message.Kind = ObjectKind.Event;
                message.Event = new EventStatus { Set = e.IsSet };
                break;
            case ConditionDetail c:
                message.Kind = ObjectKind.Condition;
                message.Condition = new ConditionStatus { LockName = c.LockName, LockKind = Requests.WireKind(c.LockKind) };
                break;
            case BarrierDetail b:
                message.Kind = ObjectKind.Barrier;
                message.Barrier = new BarrierStatus { Parties = b.Parties, Waiting = b.Waiting, Broken = b.Broken };
                break;
            case QueueDetail q:
                message.Kind = Requests.WireKind(q.Kind);
                message.Queue = new QueueStatus
                {
                    Size = q.Size,
                    Maxsize = q.MaxSize,
                    Leased = q.Leased,
                    Reserved = q.Reserved,
                    UnfinishedTasks = q.UnfinishedTasks,
                    Getters = q.Getters,
                    Putters = q.Putters,
                    Joiners = q.Joiners,
                };
                break;
            case ValueDetail v:
                message.Kind = ObjectKind.Value;
                message.Value = new ValueStatus { Typecode = v.Typecode, Length = v.Length, IsArray = v.IsArray, LockName = v.LockName };
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(status), status.Detail.GetType().Name, "unknown object detail");
        }

        return message;
    }

    /// <summary>An object that did not answer: its name and family (its kind is unknown).</summary>
    public static WireObjectStatus Unanswered(ObjectAddress address) => new()
    {
        Name = address.Name,
        Anonymous = ObjectNames.IsAnonymous(address.Name),
        Family = FamilyName(address.Family),
    };

    private static string FamilyName(ObjectFamily family) => family.ToString().ToLowerInvariant();
}
