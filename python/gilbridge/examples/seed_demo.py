"""The seed examples, on the bridge: a Lock acquire/release timed, and a FIFO Queue one
process fills while another drains.

    python -m gilbridge.examples.seed_demo [--items N] [--sleep SECONDS] [--stdlib]

Uses ``import gilbridge.multiprocessing as multiprocessing`` exactly as a script would
(``--stdlib`` runs the same code on the standard library, for comparison). The producer
and consumer are stdlib ``Process``es (spawn) that receive the bridge queue pickled.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import gilbridge.multiprocessing as multiprocessing


def producer(q: Any, n: int, pause: float, consumer_ready: Any) -> None:
    """Once the consumer is ready, put n items, (i, timestamp), pausing between them;
    then the None sentinel."""
    consumer_ready.wait(60)
    for i in range(n):
        q.put((i, time.time()))
        if pause:
            time.sleep(pause)
    q.put(None)


def consumer(q: Any, results: Any, ready: Any) -> None:
    """Drain until the sentinel; report count, order and per-item latency."""
    latencies: list[float] = []
    order: list[int] = []
    q.empty()  # connect before saying ready, so latency is the queue's, not start-up's
    ready.set()
    while (item := q.get()) is not None:
        i, sent = item
        order.append(i)
        latencies.append(time.time() - sent)
    results.put((len(order), order == sorted(order), latencies))


def time_lock(mp: Any, rounds: int) -> list[float]:
    lock = mp.Lock()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        lock.acquire()
        lock.release()
        samples.append(time.perf_counter() - t0)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10, help="items the producer puts (10)")
    parser.add_argument("--sleep", type=float, default=0.05, help="pause between puts (0.05 s)")
    parser.add_argument("--lock-rounds", type=int, default=200, help="timed acquire/release pairs")
    parser.add_argument("--stdlib", action="store_true", help="run on the standard library instead")
    args = parser.parse_args(argv)

    if args.stdlib:
        import multiprocessing as mp_impl
    else:
        mp_impl = multiprocessing  # type: ignore[assignment]
    label = "stdlib" if args.stdlib else "bridge"

    samples = time_lock(mp_impl, args.lock_rounds)
    print(f"[{label}] Lock acquire+release: median {statistics.median(samples) * 1e6:.1f} us, "
          f"min {min(samples) * 1e6:.1f} us over {len(samples)} rounds")

    import multiprocessing as stdlib

    ctx = stdlib.get_context("spawn")  # both sides use the stdlib's Process here
    queues_from: Any = ctx if args.stdlib else mp_impl
    q = queues_from.Queue()
    results = queues_from.Queue()
    ready = ctx.Event()
    t0 = time.perf_counter()
    procs = [
        ctx.Process(target=producer, args=(q, args.items, args.sleep, ready)),
        ctx.Process(target=consumer, args=(q, results, ready)),
    ]
    for p in procs:
        p.start()
    count, in_order, latencies = results.get(timeout=120)
    for p in procs:
        p.join(60)
    elapsed = time.perf_counter() - t0
    print(f"[{label}] Queue: {count} items, FIFO order kept: {in_order}, "
          f"producer+consumer processes {elapsed:.2f} s")
    if latencies:
        print(f"[{label}] Queue item latency put->get: median "
              f"{statistics.median(latencies) * 1e3:.2f} ms, max {max(latencies) * 1e3:.2f} ms")
    ok = count == args.items and in_order and all(p.exitcode == 0 for p in procs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
