"""A Consularia world for the reconcile tests: ``ConsulariaSim`` served over real HTTP, a
``ConsulariaClient`` behind a fault-scripting edge, a real SQLite mirror
(``tests/providers/harness.py``). Consularia sends no webhooks: the mirror learns only by
polls (reconcile runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meetsync.events import to_micros
from meetsync.providers.consularia import ConsulariaClient
from meetsync.providers.consularia.mapping import appointment_event
from meetsync.providers.consularia.simulator import ApiConfig, ConsulariaSim
from meetsync.providers.http import ClientOptions, RequestBudget
from meetsync.simulator import ManualClock, serve_in_background
from meetsync.worker.reconciler import snapshot_of
from tests.providers.harness import UNLIMITED, Edge, World

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PAGE = 4


class ConsulariaWorld(World):
    provider = "consularia"

    def __init__(self, sim: ConsulariaSim, root: str, db_path: Path, *, max_attempts: int = 4,
                 budget: RequestBudget | None = None, rotation: int = 0, **edge: Any) -> None:
        super().__init__(db_path, lambda: sim.now)
        self.sim = sim
        self.edge = Edge(**edge)
        self.client = ConsulariaClient(
            api_token=sim.token, api_url=f"{root}/v1", budget=budget or RequestBudget(UNLIMITED),
            rotation=rotation,
            options=ClientOptions(transport=self.edge, sleep=self.sleep, max_attempts=max_attempts),
        )

    def truth(self) -> dict[str, dict[str, Any]]:
        return {
            a: snapshot_of(appointment_event(
                self.sim.detail(a), event_id="truth", type="truth",
                occurred_at=to_micros(self.sim.now), account="default", detail=True))
            for a in self.sim.appointments
        }

    def details_asked(self) -> list[str]:
        """The appointment ids fetched one by one, in order."""
        return [r.url.path.split("/")[-2] for r in self.edge.requests
                if r.url.path.rstrip("/") != "/v1/appointments"]


@contextmanager
def served(sim: ConsulariaSim, page_size: int = PAGE) -> Iterator[str]:
    config = ApiConfig(page_size=page_size, rate_limit_per_minute=UNLIMITED)
    with serve_in_background(sim.asgi_app(config)) as root:
        yield root


@asynccontextmanager
async def consularia_world(sim: ConsulariaSim, db_path: Path, *, page_size: int = PAGE,
                           **options: Any) -> AsyncIterator[ConsulariaWorld]:
    with served(sim, page_size) as root:
        async with ConsulariaWorld(sim, root, db_path, **options) as world:
            yield world


def new_sim(seed: int = 21) -> ConsulariaSim:
    return ConsulariaSim(seed, start=START, clock=ManualClock())


@pytest.fixture
def sim() -> ConsulariaSim:
    return new_sim()


MakeWorld = Callable[..., ConsulariaWorld]


@pytest.fixture
async def world(sim: ConsulariaSim, tmp_path: Path) -> AsyncIterator[MakeWorld]:
    """``world(rotation=..., max_attempts=..., faults=..., after=...)`` over ``sim`` (pages of
    ``PAGE``), with a fresh mirror each."""
    made: list[ConsulariaWorld] = []
    with served(sim) as root:

        def make(**options: Any) -> ConsulariaWorld:
            made.append(ConsulariaWorld(sim, root, tmp_path / f"mirror{len(made)}.db",
                                        **options))
            return made[-1]

        yield make
        for built in made:
            await built.aclose()
