"""What every stage shares: its options, the figures it reports, and small timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Options:
    """How big a run is: ``quick`` only proves every stage still runs."""

    quick: bool
    workdir: Path
    profile_dir: Path | None = None

    def pick(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Figure:
    """One measured comparison: ours against a baseline from the same run, and its target."""

    name: str
    unit: str
    ours: float
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    def require_ratio_at_least(self, minimum: float) -> Figure:
        self.target = f"ratio ≥ {minimum:.2f}"
        self.met = self.ratio is not None and self.ratio >= minimum
        return self


@dataclass
class StageResult:
    """A stage's figures, the commands that produced them, or why it was skipped."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown (a table), after the notes
    skipped: str | None = None
    seconds: float = 0.0


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def median_rate(fn: Callable[[], int], repeats: int) -> float:
    """The median rate (items/s) of ``repeats`` runs of ``fn``, which returns its item count."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = fn()
        rates.append(rate(done, time.perf_counter() - started))
    return statistics.median(rates)
