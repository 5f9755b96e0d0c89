"""An Avon world for the reconcile tests: ``AvonSim`` served over real HTTP, an ``AvonClient``
behind a fault-scripting edge, a real SQLite mirror (``tests/providers/harness.py``)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from meetsync.events import Event, to_micros
from meetsync.providers.avon import AvonClient
from meetsync.providers.avon.mapping import appointment_event
from meetsync.providers.avon.simulator import AvonDelivery, AvonSim
from meetsync.providers.http import ClientOptions, RequestBudget
from meetsync.simulator import ManualClock, serve_in_background
from meetsync.worker.reconciler import snapshot_of
from tests.providers.harness import UNLIMITED, Edge, World

START = datetime(2026, 12, 1, 15, tzinfo=UTC)
ACCOUNT = "default"
_fetches = itertools.count()


class AvonWorld(World):
    provider = "avon"

    def __init__(self, sim: AvonSim, root: str, db_path: Path, *, max_attempts: int = 4,
                 budget: RequestBudget | None = None, **edge: Any) -> None:
        super().__init__(db_path, lambda: sim.now)
        self.sim = sim
        self.edge = Edge(**edge)
        credentials = sim.credentials
        self.client = AvonClient(
            api_url=root, client_id=credentials.client_id,
            client_secret=credentials.client_secret, user_jwt=credentials.user_jwt,
            avon_account=credentials.account, budget=budget or RequestBudget(UNLIMITED),
            options=ClientOptions(transport=self.edge, sleep=self.sleep, max_attempts=max_attempts),
        )

    def snapshot(self, obj: dict[str, Any]) -> Event:
        """What a refetch returning ``obj`` writes (the worker's path for a hint)."""
        return appointment_event(obj, event_id=f"refetch:{next(_fetches)}", type="refetch",
                                 occurred_at=to_micros(self.sim.now), account=ACCOUNT)

    def heard(self, *appointment_ids: str) -> None:
        """A hint for each arrived and the worker refetched it now."""
        self.apply(self.snapshot(self.sim.shown(a)) for a in appointment_ids)

    def heard_deliveries(self, deliveries: Iterable[AvonDelivery]) -> None:
        """Each delivery's hint refetched right after the change it reports: the appointment
        as the delivery's own object shows it (the API's view at that moment)."""
        self.apply(self.snapshot(orjson.loads(d.body)["object"]) for d in deliveries)

    def truth(self) -> dict[str, dict[str, Any]]:
        return {a: snapshot_of(self.snapshot(self.sim.shown(a))) for a in self.sim.appointments}


@contextmanager
def served(sim: AvonSim, **config: Any) -> Iterator[str]:
    config.setdefault("per_minute_limit", UNLIMITED)
    with serve_in_background(sim.asgi_app(**config)) as root:
        yield root


@asynccontextmanager
async def avon_world(sim: AvonSim, db_path: Path, **options: Any) -> AsyncIterator[AvonWorld]:
    with served(sim) as root:
        async with AvonWorld(sim, root, db_path, **options) as world:
            yield world


def new_sim(seed: int = 5) -> AvonSim:
    return AvonSim(seed, start=START, clock=ManualClock())


@pytest.fixture
def sim() -> AvonSim:
    return new_sim()


MakeWorld = Callable[..., AvonWorld]


@pytest.fixture
async def world(sim: AvonSim, tmp_path: Path) -> AsyncIterator[MakeWorld]:
    """``world(max_attempts=..., budget=..., faults=..., after=...)`` over ``sim``, served over
    real HTTP, with a fresh mirror each."""
    made: list[AvonWorld] = []
    with served(sim) as root:

        def make(**options: Any) -> AvonWorld:
            made.append(AvonWorld(sim, root, tmp_path / f"mirror{len(made)}.db", **options))
            return made[-1]

        yield make
        for built in made:
            await built.aclose()
