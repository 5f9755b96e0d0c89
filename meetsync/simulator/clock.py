"""A hand-driven monotonic clock with a matching ``sleep``, for tests of anything time-bound.

Pass ``clock`` as a clock (it is callable) and ``clock.sleep`` or ``clock.auto_sleep`` as the
sleep of the code under test (the API's rate limiter, a ``RequestBudget``, a client's retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Clock = Callable[[], float]
"""Monotonic seconds: ``time.monotonic`` in a server, a ``ManualClock`` in a test."""


class ManualClock:
    """Monotonic time that moves only when told; ``sleep`` parks until it has moved enough."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, future))
        await future

    async def auto_sleep(self, seconds: float) -> None:
        """A sleep that just moves time on (for a single caller, e.g. a client's retries)."""
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    async def settle(self) -> None:
        """Let every runnable task run until it parks again."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def advance_to(self, moment: float) -> None:
        """Move time to ``moment`` and wake the sleepers that are due."""
        self.now = moment
        due = [entry for entry in self._sleepers if entry[0] <= moment]
        self._sleepers = [entry for entry in self._sleepers if entry[0] > moment]
        for _, future in due:
            if not future.done():
                future.set_result(None)
        await self.settle()

    def next_deadline(self) -> float | None:
        return min((when for when, _ in self._sleepers), default=None)
