"""The ``compare`` command: options, the interleaved run, and the outputs."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ._catalogue import BY_KEY, WORKLOADS, Workload, is_bridge

if TYPE_CHECKING:  # pragma: no cover
    from ._progress import Progress
    from ._results import WorkloadResult
    from ._runner import Runner
    from .workloads import Sizes

DEFAULT_OUTPUT_DIR: Final = "artifacts/compare"
REPO: Final = Path(__file__).resolve().parents[3]


def _workload_list(text: str) -> list[str]:
    keys: list[str] = []
    for key in (part.strip() for part in text.split(",")):
        if key == "all":
            keys.extend(w.key for w in WORKLOADS)
        elif key in BY_KEY:
            keys.append(key)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown workload {key!r} (choose from {', '.join(BY_KEY)}, or all)")
    return list(dict.fromkeys(keys))


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options, on ``parser`` (its own, or the ``compare`` subcommand's)."""
    parser.add_argument("--workloads", type=_workload_list, default=[w.key for w in WORKLOADS],
                        metavar="A,B,...",
                        help=f"comma-separated workloads: {', '.join(BY_KEY)}, or all (default all)")
    parser.add_argument("--repeats", type=_positive_int, default=5,
                        help="timed repetitions per contender, interleaved (default 5)")
    parser.add_argument("--workers", type=_positive_int, default=2,
                        help="pool size for the pool workloads (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (a fraction of the default work; for tests)")
    parser.add_argument("--primes-below", type=_positive_int, metavar="N",
                        help="cpu: count the primes below N (default 20,000,000; --quick 200,000)")
    parser.add_argument("--queue-items", type=_positive_int, metavar="N",
                        help="queue: items per repetition (default 100,000; --quick 5,000)")
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR), metavar="DIR",
                        help=f"where compare.json and compare.png go (default {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--no-chart", action="store_true", help="do not draw compare.png")


def build_parser() -> argparse.ArgumentParser:
    from . import __doc__ as doc

    parser = argparse.ArgumentParser(prog="python -m gilbridge compare", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the comparison ``args`` describe; print the table; write the figures.

    Blocks for the whole run (about 4 minutes at the defaults on 2 cores). Returns 0, or 1
    when any workload failed (its row says why; the others still ran), or 130 on Ctrl-C.
    """
    from ._chart import matplotlib_available, write_chart
    from ._progress import Progress
    from ._runner import Runner
    from ._table import render
    from .workloads import Sizes

    sizes = Sizes.quick(args.workers) if args.quick else Sizes(workers=args.workers)
    if args.primes_below is not None:
        sizes = replace(sizes, primes_below=args.primes_below)
    if args.queue_items is not None:
        sizes = replace(sizes, queue_items=args.queue_items)
    workloads = [BY_KEY[key] for key in args.workloads]
    output_dir: Path = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    facts = _machine_facts()
    runners = {"stdlib": Runner("stdlib"), "bridge": Runner("bridge")}
    progress = Progress(sum(len(w.contenders) * (args.repeats + 1) for w in workloads))
    started = time.perf_counter()
    results: list[WorkloadResult] = []
    interrupted = False
    try:
        if any(is_bridge(c) for w in workloads for c in w.contenders):
            facts["host"] = _host_facts(runners["bridge"])
        for workload in workloads:
            results.append(_run_workload(workload, sizes, args.repeats, runners, progress))
    except KeyboardInterrupt:
        interrupted = True
        for runner in runners.values():
            runner.kill()
    finally:
        progress.close()
        for runner in runners.values():
            runner.close()
    seconds = time.perf_counter() - started

    heading = (f"Bridge vs stdlib multiprocessing: medians of {args.repeats} interleaved "
               f"repetitions, {sizes.workers} workers, {facts['cpu_count']} CPUs, "
               f"Python {facts['python']}" + (" (--quick sizes)" if args.quick else ""))
    document = {
        "machine": facts,
        "settings": {"workloads": [w.key for w in workloads], "repeats": args.repeats,
                     "workers": sizes.workers, "quick": args.quick, "sizes": asdict(sizes)},
        "workloads": {r.workload.key: r.to_json() for r in results},
        "failed": [r.workload.key for r in results if r.failed],
        "interrupted": interrupted,
        "seconds": seconds,
    }
    # The files first: the figures survive a closed stdout (| head).
    json_path = output_dir / "compare.json"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written = [str(json_path)]
    chart_note = ""
    if not args.no_chart and matplotlib_available():
        chart_path = output_dir / "compare.png"
        write_chart(results, chart_path, heading)
        written.append(str(chart_path))
    elif not args.no_chart:
        chart_note = "no chart: matplotlib is not importable (Debian: apt-get install python3-matplotlib)\n"

    print(render(results, heading, [_sizes_line(sizes)]))
    if interrupted:
        print("\ninterrupted (Ctrl-C): the figures above are the workloads that finished")
    print(f"\n{chart_note}written: {', '.join(written)}; total {seconds:.0f} s")
    if interrupted:
        return 130
    return 1 if document["failed"] else 0


def _run_workload(workload: Workload, sizes: Sizes, repeats: int, runners: dict[str, Runner],
                  progress: Progress) -> WorkloadResult:
    """Set up every contender, then sample them in turn (a warm-up round, then
    ``repeats`` timed rounds: A B C A B C ...), then close them. A contender that fails
    is dropped from the rounds with its error recorded; the others go on."""
    from ._results import WorkloadResult
    from ._runner import SETUP_TIMEOUT, RunnerError
    from ._table import with_unit

    result = WorkloadResult.empty(workload)
    started = time.perf_counter()
    active: list[str] = []
    steps_done = dict.fromkeys(workload.contenders, 0)

    def runner_of(contender: str) -> Runner:
        return runners["bridge" if is_bridge(contender) else "stdlib"]

    def fail(contender: str, error: RunnerError) -> None:
        lost = [contender]
        if error.runner_lost:  # the benches of that runner went with it
            lost = [c for c in active if runner_of(c) is runner_of(contender)] or [contender]
        for name in lost:
            entry = result.contenders[name]
            if entry.error is None:
                entry.error = str(error) if name == contender else f"lost with its runner: {error}"
                entry.error_details = error.details
            if name in active:
                active.remove(name)
            progress.skip(repeats + 1 - steps_done[name])
            steps_done[name] = repeats + 1
        progress.note(f"{workload.key}: {contender} failed: {error}")

    for contender in workload.contenders:
        try:
            runner_of(contender).request(SETUP_TIMEOUT, "setup", workload.key, contender, sizes)
            active.append(contender)
        except RunnerError as error:
            fail(contender, error)

    for round_ in range(repeats + 1):  # round 0 warms up, outside the figures
        primes: dict[str, int] = {}
        for contender in list(active):
            if contender not in active:  # lost with its runner earlier in this round
                continue
            try:
                sample = runner_of(contender).request(workload.sample_timeout, "sample", contender)
            except RunnerError as error:
                fail(contender, error)
                continue
            entry = result.contenders[contender]
            if round_:
                entry.samples.append(sample.value)
                entry.extras.append(sample.extra)
            else:
                entry.warmup = {"value": sample.value, "extra": sample.extra}
            if "primes" in sample.extra:
                primes[contender] = sample.extra["primes"]
            steps_done[contender] += 1
            label = "warm-up" if not round_ else f"{round_}/{repeats}"
            progress.step(f"{workload.key} {label} {contender}: {with_unit(workload.unit, sample.value)}")
            if workload.settle_seconds:
                time.sleep(workload.settle_seconds)
        if primes:
            _check_primes(result, round_, primes)

    for contender in active:
        try:
            runner_of(contender).request(SETUP_TIMEOUT, "close", contender)
        except RunnerError as error:
            result.errors.append(f"closing {contender}: {error}")
    result.seconds = time.perf_counter() - started
    return result


def _sizes_line(sizes: Sizes) -> str:
    return (f"sizes: seed sleep {sizes.seed_sleep:g} s; map {sizes.map_items:,} items; "
            f"cpu primes below {sizes.primes_below:,}; queue {sizes.queue_items:,} items; "
            f"lock {sizes.lock_pairs:,} pairs (stdlib Lock {sizes.local_lock_pairs:,}); "
            f"counter {sizes.counter_increments:,} increments; "
            f"array {sizes.element_accesses:,} element accesses; "
            f"apply {sizes.apply_calls} calls; cold map of {sizes.cold_items} items")


def _check_primes(result: WorkloadResult, round_: int, primes: dict[str, int]) -> None:
    """The C# kernel and the Python function must count the same primes, every round."""
    equal = len(set(primes.values())) == 1
    checks = result.checks
    checks["primes_equal_every_repetition"] = checks.get("primes_equal_every_repetition", True) and equal
    checks.setdefault("primes_per_repetition", []).append(primes)
    if equal:
        checks["primes"] = next(iter(primes.values()))
    else:
        result.errors.append(f"{'warm-up' if not round_ else f'repetition {round_}'}: "
                             f"the prime totals differ: {primes}")


def _host_facts(runner: Runner) -> dict[str, Any]:
    from ._runner import SETUP_TIMEOUT, RunnerError

    try:
        info = runner.request(SETUP_TIMEOUT, "info")
    except RunnerError as error:
        return {"error": str(error)}
    return dict(info.get("host", {}))


def _machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, "-m", "gilbridge", *sys.argv[1:]]),
        "git_commit": None,
        "git_dirty": None,
    }
    if (REPO / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=10)
            status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return facts
        if commit.returncode == 0:
            facts["git_commit"] = commit.stdout.strip()
            facts["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    return facts
