"""Faults the simulated API injects, set at run time (``sim.faults = Faults(...)``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Faults:
    """Random 500s and 429s and a fixed response delay, deterministic under ``seed``.

    Each request draws once: below ``error_rate`` it gets a 500, then below
    ``error_rate + rate_limit_rate`` a 429 with ``retry-after: retry_after``.
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    latency_ms: int = 0
    retry_after: int = 1
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> int | None:
        """The status to inject for one request, or None to serve it normally."""
        if not (self.error_rate or self.rate_limit_rate):
            return None
        roll = self._rng.random()
        if roll < self.error_rate:
            return 500
        if roll < self.error_rate + self.rate_limit_rate:
            return 429
        return None
