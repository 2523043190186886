"""Lock and Queue figures for the foundation, each beside the stdlib in the same run.

    python -m gilbridge.benchmarks.foundation [--repeats 7] [--lock-ops 2000] [--items 100000]

Repetitions interleave the contenders (A B C A B C ...) so a noisy machine affects all
alike; the table shows the median with the min-max spread, and the ratio of each Bridge
figure to each stdlib figure. Queue throughput is measured between two OS processes (a
producer and a consumer started with the stdlib's spawn context), from the moment both
are ready to the consumer's last get.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as stdlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ITEM = b"0123456789abcdef"  # 16 bytes, like the platform notes' stdlib baseline


def lock_cost(lock: Any, ops: int) -> float:
    """Seconds per acquire+release pair over ``ops`` pairs (blocks only on the lock)."""
    acquire, release = lock.acquire, lock.release
    start = time.perf_counter()
    for _ in range(ops):
        acquire()
        release()
    return (time.perf_counter() - start) / ops


def _producer(q: Any, items: int, ready: Any, go: Any) -> None:
    q.qsize() if hasattr(q, "qsize") else None  # connect (Bridge) before saying ready
    ready.wait()
    go.wait()
    put = q.put
    for _ in range(items):
        put(ITEM)
    if hasattr(q, "close"):
        q.close()
        q.join_thread()


def _consumer(q: Any, items: int, ready: Any, go: Any, done: Any) -> None:
    q.qsize() if hasattr(q, "qsize") else None
    ready.wait()
    go.wait()
    get = q.get
    for _ in range(items):
        get()
    done.send(time.perf_counter())


def queue_throughput(make_queue: Callable[[], Any], items: int) -> float:
    """Items per second from one producer process to one consumer process."""
    ctx = stdlib.get_context("spawn")
    q = make_queue()
    ready = ctx.Barrier(3)
    go = ctx.Event()
    receive, send = ctx.Pipe(duplex=False)
    producer = ctx.Process(target=_producer, args=(q, items, ready, go))
    consumer = ctx.Process(target=_consumer, args=(q, items, ready, go, send))
    producer.start()
    consumer.start()
    try:
        ready.wait(timeout=60)
        start = time.perf_counter()
        go.set()
        if not receive.poll(300):
            raise TimeoutError("consumer did not finish within 300 s")
        finished = receive.recv()
        return items / (finished - start)
    finally:
        for process in (producer, consumer):
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def summarize(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--lock-ops", type=int, default=2000, help="pairs per sample for Manager and Bridge locks")
    parser.add_argument("--items", type=int, default=100_000, help="queue items per sample")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    import gilbridge.multiprocessing as bridge

    manager = stdlib.Manager()
    contenders_lock: dict[str, tuple[Any, int]] = {
        "stdlib Lock": (stdlib.Lock(), args.lock_ops * 100),
        "stdlib Manager().Lock": (manager.Lock(), args.lock_ops),
        "Bridge Lock": (bridge.Lock(), args.lock_ops),
    }
    contenders_queue: dict[str, Callable[[], Any]] = {
        "stdlib Queue": stdlib.get_context("spawn").Queue,
        "Bridge Queue": bridge.Queue,
    }
    lock_samples: dict[str, list[float]] = {name: [] for name in contenders_lock}
    queue_samples: dict[str, list[float]] = {name: [] for name in contenders_queue}
    for lock, _ in contenders_lock.values():
        lock_cost(lock, 50)  # warm-up: connections, JIT of the host's paths
    for repeat in range(args.repeats):
        for name, (lock, ops) in contenders_lock.items():
            lock_samples[name].append(lock_cost(lock, ops))
        for name, make in contenders_queue.items():
            queue_samples[name].append(queue_throughput(make, args.items))
        print(f"  repetition {repeat + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    manager.shutdown()

    locks = {name: summarize(s) for name, s in lock_samples.items()}
    queues = {name: summarize(s) for name, s in queue_samples.items()}
    print(f"\nLock acquire+release (µs per pair; median [min-max] of {args.repeats})")
    for name, s in locks.items():
        print(f"  {name:<24} {s['median'] * 1e6:10.3f}  [{s['min'] * 1e6:.3f}-{s['max'] * 1e6:.3f}]")
    bridge_lock = locks["Bridge Lock"]["median"]
    print(f"  Bridge / stdlib Lock           = {bridge_lock / locks['stdlib Lock']['median']:.0f}x")
    print(f"  Bridge / Manager().Lock        = {bridge_lock / locks['stdlib Manager().Lock']['median']:.2f}")
    print(f"\nQueue put/get between two processes, {len(ITEM)}-byte items (items/s; median [min-max])")
    for name, s in queues.items():
        print(f"  {name:<24} {s['median']:12,.0f}  [{s['min']:,.0f}-{s['max']:,.0f}]")
    print(f"  Bridge / stdlib Queue          = {queues['Bridge Queue']['median'] / queues['stdlib Queue']['median']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"lock_seconds_per_pair": locks, "queue_items_per_second": queues}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
