"""Playing a workload: many lifecycles (one appointment's or meeting's changes, in true order)
interleaved at random, so changes of different appointments mix as they do at a real provider."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def interleave(rng: random.Random, lifecycle: Callable[[], Iterator[T]], count: int) -> Iterator[T]:
    """``count`` lifecycles, each started by ``lifecycle()``, picking at random which one moves
    next; each ``next`` makes one change (a caller may stop partway, look, then go on).

    At least four run at once while more wait; deterministic under ``rng``.
    """
    waiting = count
    active: list[Iterator[T]] = []
    while waiting or active:
        if waiting and (len(active) < 4 or rng.random() < 0.35):
            waiting -= 1
            chosen = lifecycle()
            active.append(chosen)
        else:
            chosen = rng.choice(active)
        change = next(chosen, None)
        if change is None:
            active.remove(chosen)
        else:
            yield change
