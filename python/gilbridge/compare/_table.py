"""The plain-text table ``compare`` prints, and the display units it shares with the chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ._catalogue import SECONDS
from ._results import WorkloadResult


def display_unit(unit: str, value: float) -> tuple[str, float]:
    """A readable unit for ``value`` (in ``unit``) and the factor to multiply by."""
    if unit == SECONDS:
        if value < 1e-3:
            return "µs", 1e6
        if value < 1.0:
            return "ms", 1e3
        return "s", 1.0
    if value >= 1e6:
        return "M " + unit, 1e-6
    if value >= 1e4:
        return "k " + unit, 1e-3
    return unit, 1.0


def number(value: float) -> str:
    """About three significant figures, never in exponent form for ordinary sizes."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.001 or value == 0:
        return f"{value:.3g}"
    return f"{value:.2e}"


def with_unit(unit: str, value: float) -> str:
    shown, factor = display_unit(unit, value)
    return f"{number(value * factor)} {shown}"


def _rows(result: WorkloadResult) -> list[list[str]]:
    w = result.workload
    ratios = result.ratios()
    targets = {t.target.contender: t for t in result.targets()}
    notes: dict[str, list[str]] = {}
    for name, reference, ratio in result.extra_ratios():
        if ratio is not None:
            notes.setdefault(name, []).append(f"{number(ratio)} × {reference}")
    for speedup in targets.values():
        observed = speedup.observed
        if speedup.target.factor < 1 and observed:  # a "k× faster" target
            speed = f"{number(1 / observed)}× faster" if observed <= 1 else f"{number(observed)}× slower"
            notes.setdefault(speedup.target.contender, []).append(f"{speed} than {speedup.target.reference}")
    for name, contender in result.contenders.items():
        busy = [extra["cores_busy"] for extra in contender.extras if "cores_busy" in extra]
        if busy:
            notes.setdefault(name, []).append(f"{statistics.median(busy):.1f} cores busy")
    rows: list[list[str]] = []
    for index, (name, contender) in enumerate(result.contenders.items()):
        first = w.key if index == 0 else ""
        if contender.error:
            rows.append([first, name, "ERROR", "", "", "", "", "", contender.error.splitlines()[0][:160]])
            continue
        median = contender.median
        if median is None:
            rows.append([first, name, "-", "", "", "", "", "", ""])
            continue
        shown, factor = display_unit(w.unit, median)
        spread = f"[{number(min(contender.samples) * factor)}–{number(max(contender.samples) * factor)}]"
        ratio = ratios.get(name)
        target = targets.get(name)
        met = "" if target is None else {True: "yes", False: "NO", None: "?"}[target.met]
        rows.append([
            first, name, number(median * factor), spread, shown,
            "base" if name == w.baseline else ("" if ratio is None else number(ratio)),
            "" if target is None else target.target.text, met, "; ".join(notes.get(name, [])),
        ])
    for check, value in result.checks.items():
        if isinstance(value, (list, dict)):  # the details are in compare.json
            continue
        rows.append(["", f"check: {check}", "", "", "", "", "", "", str(value)])
    for error in result.errors:
        rows.append(["", "error", "ERROR", "", "", "", "", "", error.splitlines()[0][:160]])
    return rows


HEADER = ["workload", "contender", "median", "[min–max]", "unit", "ratio", "target", "met", "notes"]


def render(results: Sequence[WorkloadResult], heading: str, footer: Sequence[str] = ()) -> str:
    """The table: one row per contender, workloads in order, a blank line between them."""
    groups = [_rows(r) for r in results]
    table = [HEADER] + [row for group in groups for row in group]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    right = {2, 5}  # numbers align right

    def line(row: list[str]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    out = [heading, "", line(HEADER), line(["-" * width for width in widths])]
    for index, group in enumerate(groups):
        if index:
            out.append("")
        out.extend(line(row) for row in group)
    out.append("")
    out.append("ratio = median / the workload's baseline median ('base'); for items/s higher is better,")
    out.append("for times lower is better.")
    for result in results:
        out.append(f"  {result.workload.key}: {result.workload.title}")
        for note in result.workload.notes:
            out.append(f"      {note}")
    out.extend(footer)
    return "\n".join(out)
