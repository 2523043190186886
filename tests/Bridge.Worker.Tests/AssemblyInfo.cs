// Each test starts real worker processes (some embedding CPython); on a 2-core machine
// they starve each other when run in parallel, so the classes run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
