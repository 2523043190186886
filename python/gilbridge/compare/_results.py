"""Samples and what follows from them: medians, spreads, ratios, targets met.

Values are kept in the workload's base unit (seconds, or items per second); the table
and the chart choose display units.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ._catalogue import Target, Workload


@dataclass
class ContenderResult:
    name: str
    samples: list[float] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    warmup: dict[str, Any] | None = None  # the untimed first sample: value and extras
    error: str | None = None
    error_details: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "extras": self.extras,
            "warmup": self.warmup,
            "error": self.error,
            "error_details": self.error_details or None,
        }


@dataclass(frozen=True)
class TargetResult:
    target: Target
    observed: float | None   # the ratio to the reference, or the median for a limit
    threshold: float
    met: bool | None          # None: a figure it needs is missing

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.target.text,
            "contender": self.target.contender,
            "reference": self.target.reference,
            "factor": self.target.factor if self.target.reference else None,
            "limit": self.target.limit,
            "observed": self.observed,
            "met": self.met,
        }


@dataclass
class WorkloadResult:
    workload: Workload
    contenders: dict[str, ContenderResult]
    checks: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # failures not tied to one contender
    seconds: float = 0.0

    @classmethod
    def empty(cls, workload: Workload) -> WorkloadResult:
        return cls(workload, {name: ContenderResult(name) for name in workload.contenders})

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(c.error for c in self.contenders.values())

    def median(self, contender: str) -> float | None:
        return self.contenders[contender].median

    def ratio(self, contender: str, reference: str) -> float | None:
        value, base = self.median(contender), self.median(reference)
        if value is None or not base:
            return None
        return value / base

    def ratios(self) -> dict[str, float | None]:
        """Each contender's median over the baseline's."""
        return {name: self.ratio(name, self.workload.baseline) for name in self.contenders}

    def extra_ratios(self) -> list[tuple[str, str, float | None]]:
        return [(c, r, self.ratio(c, r)) for c, r in self.workload.extra_ratios]

    def targets(self) -> list[TargetResult]:
        results = []
        for target in self.workload.targets:
            if target.limit is not None:
                observed, threshold = self.median(target.contender), target.limit
            else:
                assert target.reference is not None
                observed, threshold = self.ratio(target.contender, target.reference), target.factor
            met: bool | None = None
            if observed is not None:
                met = observed >= threshold if self.workload.higher_is_better else observed <= threshold
            results.append(TargetResult(target, observed, threshold, met))
        return results

    def to_json(self) -> dict[str, Any]:
        w = self.workload
        return {
            "title": w.title,
            "unit": w.unit,
            "higher_is_better": w.higher_is_better,
            "baseline": w.baseline,
            "contenders": {name: c.to_json() for name, c in self.contenders.items()},
            "ratios": self.ratios(),
            "extra_ratios": [{"contender": c, "reference": r, "ratio": v} for c, r, v in self.extra_ratios()],
            "targets": [t.to_json() for t in self.targets()],
            "checks": self.checks,
            "errors": self.errors,
            "failed": self.failed,
            "notes": list(w.notes),
            "seconds": self.seconds,
        }
