"""``python -m gilbridge compare``: the same workloads on the stdlib's ``multiprocessing``
and on Bridge (``gilbridge.multiprocessing``), side by side in one run.

Workloads (``--workloads`` keys; ``all`` by default):

  seed        the seed example, a script that starts 3 Processes that each
              time.sleep(1) and joins them, in a fresh interpreter each time
              (`python seed.py` against `python -m gilbridge seed.py`)
  process     Process(target=noop).start(); join()
  pool-start  Pool(n) to the first apply(noop) result
  cycle       with Pool(n) as pool: pool.map(trivial, range(10)), pool made in the timing
  map         pool.map(trivial, range(100_000)) on a warm pool
  cpu         count primes below N in 16 chunks, pool.starmap(f, ranges, chunksize=1):
              the same Python function on the stdlib and Bridge, and the C# kernel
              Bridge.Kernels.Primes.Count (the totals must agree every repetition)
  map-cycle   map, with the pool made and ended in the timing (with Pool(n) as pool)
  cpu-cycle   cpu, with the pool made and ended in the timing
  queue       Queue items/s from one producer process to one consumer, 16-byte items
  lock        Lock acquire+release pair (stdlib Lock, Manager().Lock, Bridge Lock)
  apply       pool.apply_async(noop).get() round trip
  cold        a fresh interpreter with no host running: import to the first Pool.map result

Each contender is set up (warm pools created) once outside the timing, except in the
*-cycle rows and seed/cold, which time what a script does from the start; then the
repetitions interleave the contenders (A B C A B C ...) so a noisy machine affects all
alike. The table gives each median with its min–max, the ratio to the workload's
baseline, and each target with whether it is met. ``compare.json`` (every sample and
the machine's facts) and ``compare.png`` (matplotlib, when importable) go to
``--output-dir``. Bridge runs use the host at ``GILBRIDGE_ADDRESS``, or the default one
(started if needed), except ``cold``, which starts and stops a private host each time.

Exit status: 0; 1 when a workload failed (its row says why; the others still ran);
2 for bad options.
"""

from __future__ import annotations

from ._cli import add_arguments, build_parser, main, run

__all__ = ["add_arguments", "build_parser", "main", "run"]
