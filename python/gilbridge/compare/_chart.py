"""``compare.png``: one panel per workload, a bar per contender (median, min–max whisker),
the target as a dashed line. Needs matplotlib (Debian: ``python3-matplotlib``), imported
only here and only when a chart is asked for.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._catalogue import is_bridge
from ._results import WorkloadResult
from ._table import display_unit, number

COLUMNS = 3
BASELINE_COLOUR = "#8c8c8c"
STDLIB_COLOUR = "#c7c7c7"
BRIDGE_COLOURS = ("#1f77b4", "#ff7f0e")
LOG_SCALE_SPREAD = 20.0  # log axis when the largest bar is this many times the smallest


def matplotlib_available() -> bool:
    """Whether matplotlib is installed (found, not imported)."""
    from importlib.util import find_spec

    return find_spec("matplotlib") is not None


def write_chart(results: Sequence[WorkloadResult], path: Path, heading: str) -> None:
    """Draw the panels of the workloads that have figures into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawable = [r for r in results if any(c.samples for c in r.contenders.values())]
    if not drawable:
        return
    rows = math.ceil(len(drawable) / COLUMNS)
    columns = min(COLUMNS, len(drawable))
    figure, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(drawable):]:
        ax.set_visible(False)
    for ax, result in zip(axes.flat, drawable):
        _panel(ax, result)
    figure.suptitle(f"{heading}\nbars: medians; whiskers: min–max; (n×): ratio to the baseline (dark grey); "
                    f"dashed: the target (green met, red not met)", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _panel(ax: Any, result: WorkloadResult) -> None:
    w = result.workload
    names = [n for n, c in result.contenders.items() if c.samples]
    medians = [result.contenders[n].median or 0.0 for n in names]
    shown, factor = display_unit(w.unit, min(medians))
    values = [m * factor for m in medians]
    lows = [v - min(result.contenders[n].samples) * factor for n, v in zip(names, values)]
    highs = [max(result.contenders[n].samples) * factor - v for n, v in zip(names, values)]
    colours = []
    bridge_index = 0
    for name in names:
        if name == w.baseline:
            colours.append(BASELINE_COLOUR)
        elif is_bridge(name):
            colours.append(BRIDGE_COLOURS[bridge_index % len(BRIDGE_COLOURS)])
            bridge_index += 1
        else:
            colours.append(STDLIB_COLOUR)
    positions = list(range(len(names)))
    ax.barh(positions, values, xerr=[lows, highs], color=colours, capsize=3)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    right = max(v + h for v, h in zip(values, highs))
    if min(values) > 0 and max(values) / min(values) > LOG_SCALE_SPREAD:
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 2, right * 8)  # room for the labels right of the bars
    else:
        ax.set_xlim(0, right * 1.45)
    ratios = result.ratios()
    for position, name, value, high in zip(positions, names, values, highs):
        ratio = ratios.get(name)
        label = number(value) + ("" if ratio is None or name == w.baseline else f"  ({number(ratio)}×)")
        ax.annotate(label, (value + high, position), xytext=(5, 0), textcoords="offset points",
                    va="center", fontsize=8)
    for target in result.targets():
        line = _target_line(result, target.target.limit, target.target.reference, target.threshold)
        if line is not None:
            colour = {True: "green", False: "red", None: "grey"}[target.met]
            ax.axvline(line * factor, color=colour, linestyle="--", linewidth=1)
    better = "higher is better" if w.higher_is_better else "lower is better"
    ax.set_xlabel(f"{shown} ({better})", fontsize=8)
    ax.set_title("\n".join(textwrap.wrap(f"{w.key}: {w.title}", 60)), fontsize=9)


def _target_line(result: WorkloadResult, limit: float | None, reference: str | None,
                 threshold: float) -> float | None:
    if limit is not None:
        return limit
    base = result.median(reference) if reference else None
    return None if base is None else base * threshold
