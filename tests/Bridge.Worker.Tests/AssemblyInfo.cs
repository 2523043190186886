// Each test starts real worker processes (some embedding CPython); run in parallel on a
// 2-core machine they starve each other, and a Task followed at once by Shutdown has lost
// its result under that load (see the issue note), so the classes run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
