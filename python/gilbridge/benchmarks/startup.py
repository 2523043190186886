"""Start-up figures for execution, each beside the stdlib in the same run, plus a check
that a CPU-bound C# kernel keeps both workers of a 2-worker pool busy.

    python -m gilbridge.benchmarks.startup [--repeats 7] [--json]

* ``Process start+join``: ``Process(target=noop).start(); join()``; Bridge vs the
  stdlib's spawn and fork contexts. Repetitions interleave the contenders with a pause
  between them, so the host's warm workers are back (a cold worker is measured apart).
* ``Pool(2) to first result``: ``Pool(2)`` created, ``apply(noop)`` returned (the pool
  is terminated outside the timing).
* ``cold Process start``: start+join when no warm worker is left (three started at once,
  the last one timed).
* ``kernel CPU``: ``Pool(2).starmap(Primes.Count, 4 ranges)``; the workers' CPU time
  (``/proc/<pid>/stat`` utime+stime, summed over the pool's workers) divided by wall time:
  ~2.0 means both cores busy, ~1.0 means one.

Uses the host at ``GILBRIDGE_ADDRESS`` (or the default one, started if needed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as stdlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def noop() -> None:
    """The trivial target."""


def process_start_join(ctx: Any) -> float:
    """Seconds for Process(target=noop).start() + join()."""
    t0 = time.perf_counter()
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    elapsed = time.perf_counter() - t0
    assert p.exitcode == 0, p.exitcode
    return elapsed


def pool_first_result(ctx: Any) -> float:
    """Seconds from Pool(2) to the first apply() result."""
    t0 = time.perf_counter()
    pool = ctx.Pool(2)
    pool.apply(noop)
    elapsed = time.perf_counter() - t0
    pool.terminate()
    return elapsed


def cold_process_start(ctx: Any) -> float:
    """Start+join of a Process when the warm workers are taken (Bridge: a cold worker)."""
    busy = [ctx.Process(target=time.sleep, args=(1.0,)) for _ in range(2)]
    for p in busy:
        p.start()
    elapsed = process_start_join(ctx)
    for p in busy:
        p.join()
    return elapsed


def _cpu_seconds(pid: int) -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kernel_cpu_ratio(stop: int = 400_000_000) -> dict[str, float]:
    """Map a CPU-bound kernel over a 2-worker pool; CPU seconds / wall seconds."""
    import gilbridge
    import gilbridge.multiprocessing as mp

    primes = gilbridge.dotnet("Bridge.Kernels.Primes.Count")
    step = stop // 4
    ranges = [(i * step, (i + 1) * step) for i in range(4)]
    with mp.Pool(2) as pool:
        pids = pool.worker_pids
        pool.apply(primes, (0, 10))  # JIT and kernel threads warmed
        before = sum(_cpu_seconds(p) for p in pids)
        t0 = time.perf_counter()
        counts = pool.starmap(primes, ranges, chunksize=1)
        wall = time.perf_counter() - t0
        cpu = sum(_cpu_seconds(p) for p in pids) - before
    return {"wall_s": wall, "cpu_s": cpu, "cpu_per_wall": cpu / wall, "primes": float(sum(counts)),
            "cores": float(os.cpu_count() or 1)}


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(samples) * 1e3, "min_ms": min(samples) * 1e3,
            "max_ms": max(samples) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between Bridge runs (warm-up)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    import gilbridge.multiprocessing as bridge

    contenders: dict[str, Any] = {
        "bridge": bridge,
        "stdlib spawn": stdlib.get_context("spawn"),
        "stdlib fork": stdlib.get_context("fork"),
    }
    # Connect (and warm the host's workers for this interpreter) before timing.
    process_start_join(bridge)
    time.sleep(1.0)
    results: dict[str, dict[str, Any]] = {}
    benchmarks: dict[str, Callable[[Any], float]] = {
        "Process start+join": process_start_join,
        "Pool(2) to first result": pool_first_result,
    }
    for title, bench in benchmarks.items():
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, ctx in contenders.items():
                samples[name].append(bench(ctx))
                if name == "bridge":
                    time.sleep(args.pause)
        results[title] = {name: _summary(s) for name, s in samples.items()}
    cold = [cold_process_start(bridge) for _ in range(3)]
    results["cold Process start+join (bridge)"] = {"bridge": _summary(cold)}
    time.sleep(args.pause)
    results["kernel CPU"] = kernel_cpu_ratio()

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for title, rows in results.items():
        print(title)
        if title == "kernel CPU":
            print(f"  Primes.Count on Pool(2): wall {rows['wall_s']:.2f} s, workers' CPU "
                  f"{rows['cpu_s']:.2f} s -> {rows['cpu_per_wall']:.2f} cores busy "
                  f"(machine: {rows['cores']:.0f})")
            continue
        for name, s in rows.items():
            print(f"  {name:14s} median {s['median_ms']:8.1f} ms  (min {s['min_ms']:.1f}, max {s['max_ms']:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
