using System.Threading.Channels;
using Bridge.Contracts.V1;
using Bridge.Core.Objects;

namespace Bridge.Host.Execution;

/// <summary>
/// One pool: its workers, the chunks waiting for a free slot, the chunks each worker is
/// running, and the events its owner watches. Workers pull: a chunk is sent only against
/// a slot the worker announced. State changes are short and guarded by one lock.
/// </summary>
internal sealed class ExecutionPool(string id, CreatePoolRequest spec)
{
    // How long a released worker may take to flush and answer before it is killed.
    private static readonly TimeSpan ReleaseDeadline = TimeSpan.FromSeconds(5);

    private readonly Lock _gate = new();
    private readonly Queue<TaskChunk> _pending = new();
    private readonly Dictionary<int, Slot> _workers = [];
    private readonly Channel<PoolEvent> _events = Channel.CreateUnbounded<PoolEvent>(new UnboundedChannelOptions { SingleReader = true });
    // Workers launched or taken for this pool that have not attached yet, by pid.
    private readonly HashSet<int> _starting = [];
    private bool _closed;
    private bool _terminated;
    private int _watchers;

    public string Id { get; } = id;

    public CreatePoolRequest Spec { get; } = spec;

    public string OwnerSession => Spec.SessionId;

    public ChannelReader<PoolEvent> Events => _events.Reader;

    /// <summary>
    /// Whether its idle workers go back to the session's warm workers when it ends. Not
    /// for a Process (it exits with its own exit code) nor with maxtasksperchild (the user
    /// asked for fresh processes).
    /// </summary>
    public bool ReusesWorkers => !Spec.ProcessMode && Spec.MaxTasksPerChild == 0;

    /// <summary>The owner feeds the workers over their data sockets; the host sees no chunk.</summary>
    public bool Direct => Spec.Direct;

    /// <summary>
    /// The silo of the cluster host that created this pool as a part of one of its own
    /// (its owner's session lives there); null for a pool created through this host.
    /// </summary>
    public string? PartOf { get; init; }

    /// <summary>Parts of this pool on other hosts of the cluster: (their silo, their pool id).</summary>
    public IReadOnlyList<(string Silo, string PoolId)> Parts { get; set; } = [];

    /// <summary>Workers attached or starting: what this pool takes of the machine's cores.</summary>
    public int WorkerCount
    {
        get
        {
            lock (_gate)
            {
                return _workers.Count + _starting.Count;
            }
        }
    }

    /// <summary>What opens this pool's workers' data sockets (direct pools).</summary>
    public string DataToken { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    /// <summary>Claims the single watcher; false when someone watches already.</summary>
    public bool TryWatch() => Interlocked.Exchange(ref _watchers, 1) == 0;

    public bool ShouldReplace(bool died)
    {
        lock (_gate)
        {
            // A part's owner would never hear of a replacement (it watches its own host).
            return !_terminated && !Spec.ProcessMode && PartOf is null && (!_closed || _pending.Count > 0 || (died && _workers.Count == 0));
        }
    }

    /// <summary>A worker launched or taken for this pool, not yet attached.</summary>
    public void Starting(WorkerProcess worker)
    {
        lock (_gate)
        {
            _starting.Add(worker.Pid);
        }
    }

    /// <summary>
    /// A starting worker will not attach. With <paramref name="reason"/> (a Process whose
    /// worker never connected), the pool ends with <paramref name="exitCode"/>, as a child
    /// that died at start-up, and says why on stderr unless a signal ended it; its chunk fails.
    /// </summary>
    public void StartFailed(WorkerProcess worker, string? reason = null, int exitCode = 1)
    {
        lock (_gate)
        {
            _starting.Remove(worker.Pid);
            if (reason is not null)
            {
                if (exitCode >= 0)
                {
                    // A signal (terminate() while it started) is the user's doing: the stdlib is silent then too.
                    _events.Writer.TryWrite(new PoolEvent { Output = new OutputText { WorkerPid = worker.Pid, Stream = 2, Text = reason } });
                }

                _events.Writer.TryWrite(new PoolEvent { WorkerExit = new WorkerExit { Pid = worker.Pid, ExitCode = exitCode } });
                FailPending("BrokenProcessPool", reason.TrimEnd());
            }

            FinishIfDone();
        }
    }

    public void AddWorker(WorkerProcess worker, bool replacement)
    {
        lock (_gate)
        {
            _starting.Remove(worker.Pid);
            if (_terminated)
            {
                // Terminated while this worker was starting: nothing will run on it, and the
                // pool may now be finished.
                Signals.Send(worker.Pid, Signals.Kill);
                FinishIfDone();
                return;
            }

            foreach (var output in worker.Attach(this))
            {
                _events.Writer.TryWrite(new PoolEvent { Output = output });
            }

            _workers[worker.Pid] = new Slot(worker);
            worker.Commands.Writer.TryWrite(new WorkerCommand
            {
                Assign = new Assignment
                {
                    PoolId = Id,
                    Python = Spec.Python ?? new PythonEnvironment(),
                    Initializer = Spec.Initializer,
                    ProcessMode = Spec.ProcessMode,
                    Name = Spec.Name,
                    DataToken = Direct ? DataToken : "",
                },
            });
            if (Spec.ProcessMode)
            {
                // The Process's one chunk follows its assignment on the same stream instead
                // of waiting for the worker's Ready: one round trip less to start() a
                // Process (the worker serves commands in order, the chunk once assigned).
                _workers[worker.Pid].Credits = 1;
                Dispatch();
            }

            if (replacement)
            {
                _events.Writer.TryWrite(Direct
                    ? new PoolEvent { WorkerJoined = new WorkerAddress { Pid = worker.Pid, DataAddress = worker.DataAddress } }
                    : new PoolEvent { WorkerStarted = worker.Pid });
            }
        }
    }

    public void Submit(IEnumerable<TaskChunk> chunks)
    {
        lock (_gate)
        {
            if (_closed || _terminated)
            {
                throw BridgeException.Precondition("ValueError", "Pool not running");
            }

            if (Direct)
            {
                throw BridgeException.Precondition("ValueError", "a direct pool's chunks go to its workers' data sockets, not to SubmitTasks");
            }

            foreach (var chunk in chunks)
            {
                _pending.Enqueue(chunk);
            }

            Dispatch();
        }
    }

    public void OnReady(WorkerProcess worker, int slots)
    {
        lock (_gate)
        {
            if (_workers.TryGetValue(worker.Pid, out var slot))
            {
                slot.Credits += Math.Max(0, slots);
                Dispatch();
            }
        }
    }

    public void OnResult(WorkerProcess worker, TaskResult result)
    {
        lock (_gate)
        {
            if (!_workers.TryGetValue(worker.Pid, out var slot) || !slot.Running.Remove(result.TaskId))
            {
                return;
            }

            slot.Completed++;
            _events.Writer.TryWrite(new PoolEvent { Result = result });
            if (Spec.MaxTasksPerChild > 0 && slot.Completed >= Spec.MaxTasksPerChild && !slot.Retiring)
            {
                slot.Retiring = true;
                slot.Credits = 0;
                worker.Commands.Writer.TryWrite(new WorkerCommand { Shutdown = true });
            }

            Dispatch();
            RetireIdleWorkersWhenClosed();
        }
    }

    public void OnOutput(OutputText output) => _events.Writer.TryWrite(new PoolEvent { Output = output });

    /// <summary>The worker's process ended: its running chunks fail, its exit is reported.</summary>
    public IReadOnlyCollection<TaskChunk> OnWorkerExited(WorkerProcess worker, int exitCode)
    {
        lock (_gate)
        {
            if (!_workers.Remove(worker.Pid, out var slot))
            {
                return [];
            }

            var lost = slot.Running.Values.ToArray();
            foreach (var chunk in lost)
            {
                _events.Writer.TryWrite(new PoolEvent
                {
                    Result = new TaskResult
                    {
                        TaskId = chunk.TaskId,
                        WorkerPid = worker.Pid,
                        Error = new TaskError
                        {
                            Type = "BrokenProcessPool",
                            Message = $"the worker process {worker.Pid} running this task exited abruptly (exit code {exitCode})",
                            WorkerDied = true,
                        },
                    },
                });
            }

            _events.Writer.TryWrite(new PoolEvent { WorkerExit = new WorkerExit { Pid = worker.Pid, ExitCode = exitCode } });
            // Chunks held back for this worker while it was idle go to the others now.
            Dispatch();
            FinishIfDone();
            return lost;
        }
    }

    public PoolState Close()
    {
        lock (_gate)
        {
            _closed = true;
            RetireIdleWorkersWhenClosed();
            FinishIfDone();
            return StateUnderLock();
        }
    }

    public PoolState Terminate()
    {
        lock (_gate)
        {
            _closed = true;
            _terminated = true;
            FailPending("TerminatedError", "the pool was terminated before this task ran");

            foreach (var slot in _workers.Values.ToArray())
            {
                // A worker running none of the pool's chunks has nothing to interrupt: it
                // leaves alive and the pool does not wait for it (it finishes attaching or
                // the initializer first; one stuck there is killed at the release deadline).
                // One running a chunk is killed, and never reused. Only a direct pool's
                // worker knows whether it runs a chunk: it is asked to exit if so.
                if (Direct || (ReusesWorkers && slot.Running.Count == 0))
                {
                    Release(slot, terminate: Direct);
                    _workers.Remove(slot.Worker.Pid);
                    _events.Writer.TryWrite(new PoolEvent { WorkerReleased = slot.Worker.Pid });
                }
                else if (!slot.Releasing)
                {
                    Signals.Send(slot.Worker.Pid, Signals.Terminate);
                }
            }

            FinishIfDone();
            return StateUnderLock();
        }
    }

    /// <summary>Whether <paramref name="pid"/> is one of this pool's workers, attached or starting.</summary>
    public bool Owns(int pid)
    {
        lock (_gate)
        {
            return _workers.ContainsKey(pid) || _starting.Contains(pid);
        }
    }

    private void FailPending(string type, string message)
    {
        while (_pending.TryDequeue(out var chunk))
        {
            _events.Writer.TryWrite(new PoolEvent
            {
                Result = new TaskResult { TaskId = chunk.TaskId, Error = new TaskError { Type = type, Message = message } },
            });
        }
    }

    /// <summary>The workers' pids and data sockets (what the owner of a direct pool connects to).</summary>
    public IReadOnlyList<WorkerAddress> Addresses()
    {
        lock (_gate)
        {
            return [.. _workers.Values.Select(slot => new WorkerAddress { Pid = slot.Worker.Pid, DataAddress = slot.Worker.DataAddress })];
        }
    }

    /// <summary>The same for an owner on another host: TCP sockets, this pool's token, this host's id.</summary>
    public IReadOnlyList<WorkerAddress> RemoteAddresses(string hostId)
    {
        lock (_gate)
        {
            return [.. _workers.Values.Select(slot => new WorkerAddress
            {
                Pid = slot.Worker.Pid, DataAddress = slot.Worker.RemoteDataAddress, DataToken = DataToken, HostId = hostId,
            })];
        }
    }

    /// <summary>The pool as host status shows it.</summary>
    public PoolStatus Status()
    {
        lock (_gate)
        {
            var status = new PoolStatus
            {
                PoolId = Id,
                SessionId = OwnerSession,
                Name = Spec.Name,
                Processes = Spec.Processes,
                Direct = Direct,
                ProcessMode = Spec.ProcessMode,
                MaxTasksPerChild = Spec.MaxTasksPerChild,
                State = _terminated ? "terminated" : _closed ? "closed" : "running",
                TasksPending = _pending.Count,
                TasksRunning = _workers.Values.Sum(s => s.Running.Count),
                WorkersStarting = _starting.Count,
                PartOf = PartOf ?? "",
            };
            foreach (var (pid, slot) in _workers.OrderBy(pair => pair.Key))
            {
                status.Workers.Add(new PoolWorkerStatus
                {
                    Pid = pid,
                    State = slot.Retiring ? "leaving" : Direct ? "serving" : slot.Running.Count > 0 ? "busy" : "idle",
                    Running = slot.Running.Count,
                    Completed = slot.Completed,
                });
            }

            return status;
        }
    }

    public PoolState State()
    {
        lock (_gate)
        {
            return StateUnderLock();
        }
    }

    private PoolState StateUnderLock()
    {
        var state = new PoolState
        {
            TasksPending = _pending.Count,
            TasksRunning = _workers.Values.Sum(s => s.Running.Count),
            Closed = _closed,
            Finished = _workers.Count == 0 && _starting.Count == 0 && (_closed || Spec.ProcessMode),
        };
        state.WorkerPids.AddRange(_workers.Keys);
        return state;
    }

    private void Dispatch()
    {
        if (_terminated)
        {
            return;
        }

        // Each chunk goes to the least busy worker with a free slot, so a quick task does
        // not queue behind a long one while another worker idles.
        while (_pending.Count > 0 && LeastBusyWithCredit() is { } slot)
        {
            var chunk = _pending.Dequeue();
            slot.Credits--;
            slot.Running[chunk.TaskId] = chunk;
            slot.Worker.Commands.Writer.TryWrite(new WorkerCommand { Task = chunk });
        }
    }

    private Slot? LeastBusyWithCredit()
    {
        Slot? best = null;
        var anyIdle = false;
        foreach (var slot in _workers.Values)
        {
            anyIdle |= slot.Running.Count == 0 && !slot.Retiring;
            if (slot.Credits > 0 && !slot.Retiring && (best is null || slot.Running.Count < best.Running.Count))
            {
                best = slot;
            }
        }

        // A prefetching worker must not queue a chunk behind its running one while a
        // sibling sits idle: that sibling's credit is on its way (it sends Ready right
        // after its last result), and a quick task would otherwise wait for a slow one.
        return best is { Running.Count: > 0 } && anyIdle ? null : best;
    }

    private void RetireIdleWorkersWhenClosed()
    {
        if (!_closed || _pending.Count > 0 || Spec.ProcessMode)
        {
            return;
        }

        foreach (var slot in _workers.Values)
        {
            if (slot.Running.Count != 0 || slot.Retiring)
            {
                continue;
            }

            if (ReusesWorkers)
            {
                Release(slot);
            }
            else
            {
                slot.Retiring = true;
                slot.Worker.Commands.Writer.TryWrite(new WorkerCommand { Shutdown = true });
            }
        }
    }

    private static void Release(Slot slot, bool terminate = false)
    {
        if (!slot.Retiring)
        {
            slot.Retiring = true;
            slot.Releasing = true;
            slot.Credits = 0;
            slot.Worker.RequestRelease(ReleaseDeadline, terminate);
        }
    }

    /// <summary>A worker this pool released has answered: it leaves the pool (if it had not already, at terminate).</summary>
    public void OnReleased(WorkerProcess worker)
    {
        lock (_gate)
        {
            if (_workers.Remove(worker.Pid))
            {
                _events.Writer.TryWrite(new PoolEvent { WorkerReleased = worker.Pid });
                FinishIfDone();
            }
        }
    }

    private void FinishIfDone()
    {
        if (_workers.Count == 0 && _starting.Count == 0 && (_closed || Spec.ProcessMode))
        {
            _events.Writer.TryComplete();
        }
    }

    private sealed class Slot(WorkerProcess worker)
    {
        public WorkerProcess Worker { get; } = worker;

        public Dictionary<long, TaskChunk> Running { get; } = [];

        public int Credits { get; set; }

        public int Completed { get; set; }

        /// <summary>Leaving the pool (shutdown or release): no more chunks.</summary>
        public bool Retiring { get; set; }

        /// <summary>Leaving alive, to be reused.</summary>
        public bool Releasing { get; set; }

    }
}
