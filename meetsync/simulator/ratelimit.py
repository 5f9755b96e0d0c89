"""The simulated APIs' rate limit: a sliding log of requests per key (a token, an account)."""

from __future__ import annotations

import math
from collections import deque

from meetsync.simulator.clock import Clock


class RateLimiter:
    """A sliding log per key: ``per_minute`` requests in any ``window`` seconds (default 60)."""

    def __init__(self, per_minute: int, clock: Clock, *, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.window = window
        self._log: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> int | None:
        """None when the request may go ahead (and is counted); else seconds to wait."""
        now = self.clock()
        log = self._log.setdefault(key, deque())
        while log and log[0] <= now - self.window:
            log.popleft()
        if len(log) < self.per_minute:
            log.append(now)
            return None
        return max(1, math.ceil(log[0] + self.window - now))
