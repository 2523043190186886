"""What ``compare`` measures: each workload's contenders, baseline, unit and targets.

Pure data, cheap to import (the command line builds its ``--workloads`` choices from it);
the code that runs a sample is in :mod:`gilbridge.compare.workloads`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

SECONDS: Final = "s"
ITEMS_PER_SECOND: Final = "items/s"


@dataclass(frozen=True)
class Target:
    """``contender`` measured against ``factor × reference`` (or an absolute ``limit``
    in the workload's unit): at most for times, at least for throughputs."""

    contender: str
    text: str
    reference: str | None = None
    factor: float = 1.0
    limit: float | None = None


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    unit: str
    contenders: tuple[str, ...]
    baseline: str
    targets: tuple[Target, ...] = ()
    # (contender, reference) ratios shown beside the one to the baseline.
    extra_ratios: tuple[tuple[str, str], ...] = ()
    # Pause after every sample of every contender, so the host's warm workers are back
    # (replaced after a Process or Pool took them) before the next one starts.
    settle_seconds: float = 0.0
    sample_timeout: float = 300.0
    notes: tuple[str, ...] = field(default=())

    @property
    def higher_is_better(self) -> bool:
        return self.unit == ITEMS_PER_SECOND


def is_bridge(contender: str) -> bool:
    """Bridge contenders run in the Bridge runner process, the others in the stdlib one."""
    return contender.startswith("bridge")


# cpu and cpu-cycle: the same Python function near the stdlib's speed, the C# kernel far past it.
_CPU_TARGETS: Final = (
    Target("bridge", "bridge ≤ 1.05 × stdlib fork", reference="stdlib fork", factor=1.05),
    Target("bridge C# kernel", "kernel ≥ 30× faster than stdlib fork", reference="stdlib fork", factor=1 / 30),
)

WORKLOADS: Final[tuple[Workload, ...]] = (
    Workload(
        key="seed",
        title="seed example: a script starting 3 Processes that each sleep, then joining them,"
              " in a fresh interpreter",
        unit=SECONDS,
        contenders=("stdlib default", "bridge"),
        baseline="stdlib default",
        targets=(Target("bridge", "bridge ≤ 1.10 × stdlib", reference="stdlib default", factor=1.10),),
        settle_seconds=1.0,
        notes=("the whole interpreter's wall time: `python seed.py` (the platform's default start"
               " method, fork on Linux) against `python -m gilbridge seed.py` (the same file,"
               " unmodified) with the host running; the first run is the warm-up",),
    ),
    Workload(
        key="process",
        title="Process(target=noop).start(); join()",
        unit=SECONDS,
        contenders=("stdlib spawn", "stdlib fork", "bridge"),
        baseline="stdlib spawn",
        targets=(Target("bridge", "bridge ≤ stdlib spawn", reference="stdlib spawn"),),
        settle_seconds=0.5,
    ),
    Workload(
        key="pool-start",
        title="Pool(n) to the first apply(noop) result",
        unit=SECONDS,
        contenders=("stdlib fork", "stdlib spawn", "bridge"),
        baseline="stdlib fork",
        targets=(Target("bridge", "bridge ≤ stdlib fork", reference="stdlib fork"),),
        settle_seconds=0.5,
    ),
    Workload(
        key="cycle",
        title="with Pool(n) as pool: pool.map(trivial, range(10)) — the pool made and ended in the timing",
        unit=SECONDS,
        contenders=("stdlib fork", "stdlib spawn", "bridge"),
        baseline="stdlib fork",
        targets=(Target("bridge", "bridge ≤ stdlib fork", reference="stdlib fork"),),
    ),
    Workload(
        key="map",
        title="pool.map(trivial, range(items)), default chunksize, warm pool",
        unit=SECONDS,
        contenders=("stdlib fork", "stdlib spawn", "bridge"),
        baseline="stdlib fork",
        targets=(Target("bridge", "bridge ≤ stdlib fork", reference="stdlib fork"),),
    ),
    Workload(
        key="cpu",
        title="count primes below N in 16 chunks, pool.starmap(f, ranges, chunksize=1), warm pool",
        unit=SECONDS,
        contenders=("stdlib fork", "bridge", "bridge C# kernel"),
        baseline="stdlib fork",
        targets=_CPU_TARGETS,
    ),
    Workload(
        key="map-cycle",
        title="with Pool(n) as pool: pool.map(trivial, range(items)) — the pool made and ended in the timing",
        unit=SECONDS,
        contenders=("stdlib fork", "stdlib spawn", "bridge"),
        baseline="stdlib fork",
        targets=(Target("bridge", "bridge ≤ stdlib fork", reference="stdlib fork"),),
    ),
    Workload(
        key="cpu-cycle",
        title="with Pool(n) as pool: the cpu workload's starmap — the pool made and ended in the timing",
        unit=SECONDS,
        contenders=("stdlib fork", "bridge", "bridge C# kernel"),
        baseline="stdlib fork",
        targets=_CPU_TARGETS,
    ),
    Workload(
        key="queue",
        title="Queue throughput, 1 producer → 1 consumer process, 16-byte items",
        unit=ITEMS_PER_SECOND,
        contenders=("stdlib Queue", "bridge Queue"),
        baseline="stdlib Queue",
        targets=(Target("bridge Queue", "bridge ≥ stdlib", reference="stdlib Queue"),),
    ),
    Workload(
        key="bounded",
        title="Queue(1000) throughput, 1 producer → 1 consumer process, 16-byte items",
        unit=ITEMS_PER_SECOND,
        contenders=("stdlib Queue", "bridge Queue"),
        baseline="stdlib Queue",
        targets=(Target("bridge Queue", "bridge ≥ 2 × stdlib", reference="stdlib Queue", factor=2.0),),
    ),
    Workload(
        key="bounded-4x4",
        title="Queue(1000) throughput, 4 producer → 4 consumer processes, 16-byte items",
        unit=ITEMS_PER_SECOND,
        contenders=("stdlib Queue", "bridge Queue"),
        baseline="stdlib Queue",
        targets=(Target("bridge Queue", "bridge ≥ stdlib", reference="stdlib Queue"),),
    ),
    Workload(
        key="lock",
        title="Lock acquire+release pair",
        unit=SECONDS,
        contenders=("stdlib Lock", "stdlib Manager().Lock", "bridge Lock"),
        baseline="stdlib Manager().Lock",
        targets=(Target("bridge Lock", "bridge ≤ Manager().Lock", reference="stdlib Manager().Lock"),),
        extra_ratios=(("bridge Lock", "stdlib Lock"),),
    ),
    Workload(
        key="counter",
        title="shared counter: with v.get_lock(): v.value += 1 (Value('i'), per increment)",
        unit=SECONDS,
        contenders=("stdlib", "bridge"),
        baseline="stdlib",
        targets=(Target("bridge", "bridge ≤ 4 × stdlib", reference="stdlib", factor=4.0),),
    ),
    Workload(
        key="element",
        title="shared array element: a[i] = a[i] + 1.0 (RawArray('d', 1000), per access)",
        unit=SECONDS,
        contenders=("stdlib", "bridge"),
        baseline="stdlib",
        targets=(Target("bridge", "bridge ≤ 2 × stdlib", reference="stdlib", factor=2.0),),
    ),
    Workload(
        key="apply",
        title="pool.apply_async(noop).get() round trip (median per call)",
        unit=SECONDS,
        contenders=("stdlib fork", "bridge"),
        baseline="stdlib fork",
        targets=(Target("bridge", "bridge ≤ stdlib fork", reference="stdlib fork"),),
    ),
    Workload(
        key="cold",
        title="cold start: import to the first Pool(n).map result, fresh interpreter",
        unit=SECONDS,
        contenders=("stdlib spawn", "bridge"),
        baseline="stdlib spawn",
        targets=(Target("bridge", "bridge ≤ 1.0 s (no host running)", limit=1.0),),
        sample_timeout=180.0,
        notes=("bridge: a private runtime directory, so the client starts its own host;"
               " that host is stopped by PID after each sample",),
    ),
)

BY_KEY: Final[dict[str, Workload]] = {w.key: w for w in WORKLOADS}
