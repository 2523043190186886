using Bridge.Contracts.V1;
using Bridge.Core.Objects;
using Bridge.Core.Sessions;
using Bridge.Host.Cluster;
using Bridge.Host.Hosting;
using Bridge.Host.Inspection;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Bridge.Host.Services;

internal sealed class SessionsService(
    IGrainFactory grains,
    SessionTracker tracker,
    HostIdentity identity,
    IOptions<BridgeHostOptions> options,
    IClusterMembershipService membership,
    ClusterPlacement placement,
    HostStatusReader statusReader,
    IHostApplicationLifetime lifetime) : Sessions.SessionsBase
{
    // A watch re-pulls its session's events this often, so no grain call stays pending
    // for long (and a failover would lose at most one slice).
    private static readonly TimeSpan WatchPollSlice = TimeSpan.FromSeconds(20);

    private readonly BridgeHostOptions _options = options.Value;

    public override async Task<HelloReply> Hello(HelloRequest request, ServerCallContext context)
    {
        var sessionId = Guid.NewGuid().ToString("N");
        var language = string.IsNullOrEmpty(request.Language) ? "unknown" : Requests.FreeText(request.Language);
        await grains.GetGrain<ISessionGrain>(sessionId)
            .Start(new SessionStart(Requests.FreeText(request.ClientName), request.Pid, language, _options.Lease));
        return new HelloReply { SessionId = sessionId, LeaseSeconds = _options.LeaseSeconds, Host = Info() };
    }

    public override async Task<KeepAliveReply> KeepAlive(KeepAliveRequest request, ServerCallContext context)
    {
        await grains.GetGrain<ISessionGrain>(Requests.Session(request.SessionId)).KeepAlive();
        return new KeepAliveReply { LeaseSeconds = _options.LeaseSeconds };
    }

    public override async Task<GoodbyeReply> Goodbye(GoodbyeRequest request, ServerCallContext context)
    {
        await grains.GetGrain<ISessionGrain>(Requests.Session(request.SessionId)).End();
        return new GoodbyeReply();
    }

    public override async Task<DetachReply> Detach(DetachRequest request, ServerCallContext context)
    {
        var sessionId = Requests.Session(request.SessionId);
        ObjectNames.Validate(request.Name, creating: false);
        var address = new ObjectAddress(Requests.FamilyOf(request.Kind), request.Name);
        // The object first: a session that still holds something there stays its member,
        // and its grain must then keep the address to end it there.
        if (await ObjectGrains.Get(grains, address).Detach(sessionId))
        {
            await grains.GetGrain<ISessionGrain>(sessionId).Detached(address);
        }

        return new DetachReply();
    }

    public override async Task Watch(WatchRequest request, IServerStreamWriter<SessionEvent> responseStream, ServerCallContext context)
    {
        var session = grains.GetGrain<ISessionGrain>(Requests.Session(request.SessionId));
        var generation = await session.Watch();

        // Ends with the call, or when the host stops (so a watching client never holds
        // up a graceful shutdown).
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var cancellationToken = stop.Token;
        await responseStream.WriteAsync(new SessionEvent { Started = new WatchStarted() }, cancellationToken);
        try
        {
            while (true)
            {
                var batch = await session.NextEvents(generation, WatchPollSlice, cancellationToken);
                if (batch.Superseded)
                {
                    return;
                }

                foreach (var recall in batch.Recalls)
                {
                    await responseStream.WriteAsync(
                        new SessionEvent { LockRecall = new Contracts.V1.LockRecall { Name = recall.LockName, CacheToken = recall.CacheToken } },
                        cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            // The host is stopping: end the stream normally.
        }
    }

    public override async Task<HostInfo> GetHostInfo(HostInfoRequest request, ServerCallContext context)
    {
        var info = Info();
        var silos = membership.CurrentSnapshot.Members.Values
            .Where(member => member.Status == Orleans.Runtime.SiloStatus.Active)
            .ToDictionary(member => member.Name, member => member.SiloAddress.ToParsableString(), StringComparer.Ordinal);
        await Task.WhenAll(info.Members.Where(member => silos.ContainsKey(member.HostId)).Select(async member =>
        {
            try
            {
                var workers = await placement.CallAgentAsync(silos[member.HostId], agent => agent.Workers())
                    .WaitAsync(TimeSpan.FromSeconds(2), context.CancellationToken);
                (member.Workers, member.WorkersInPools) = (workers.Running, workers.InPools);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                (member.Workers, member.WorkersInPools) = (-1, -1);
            }
        }));
        return info;
    }

    public override async Task<HostStatus> GetHostStatus(HostStatusRequest request, ServerCallContext context)
    {
        var status = await statusReader.ReadAsync(request.MaxObjects, context.CancellationToken);
        status.Host = await GetHostInfo(new HostInfoRequest(), context);
        return status;
    }

    private HostInfo Info()
    {
        var info = new HostInfo
        {
            Version = identity.Version,
            Pid = identity.Pid,
            CpuCount = HostIdentity.CpuCount,
            MaxPayloadBytes = _options.MaxPayloadBytes,
            ActiveSessions = tracker.ActiveCount,
            UptimeSeconds = identity.Uptime.TotalSeconds,
            HostId = identity.Id,
        };
        if (!string.IsNullOrEmpty(_options.Cluster))
        {
            info.ClusterId = _options.ClusterId;
            foreach (var member in membership.CurrentSnapshot.Members.Values.OrderBy(m => m.Name, StringComparer.Ordinal))
            {
                info.Members.Add(new Bridge.Contracts.V1.ClusterMember
                {
                    HostId = member.Name,
                    SiloAddress = member.SiloAddress.Endpoint.ToString(),
                    Status = member.Status.ToString(),
                });
            }
        }

        return info;
    }
}
