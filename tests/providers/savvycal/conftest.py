"""Fixtures for SavvyCal's API client tests: a simulated provider, clients over its API (on the
hand-driven ``clock`` of ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest

from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator.clock import ManualClock

START = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def sim() -> SavvyCalSim:
    provider = SavvyCalSim(11, start=START)
    provider.play(60)
    return provider


MakeClient = Callable[..., SavvyCalClient]


@pytest.fixture
async def make_client(sim: SavvyCalSim, clock: ManualClock) -> AsyncIterator[MakeClient]:
    """Clients over the simulator's ASGI app; retries sleep on the fake clock."""
    made: list[SavvyCalClient] = []

    def make(**overrides: object) -> SavvyCalClient:
        app = overrides.pop("app", None) or sim.asgi_app(clock=clock)
        options: dict[str, object] = {
            "budget": RequestBudget(10_000),
            "transport": httpx.ASGITransport(app=app),
            "sleep": clock.auto_sleep,
        }
        options.update(overrides)
        token = str(options.pop("token", sim.token))
        client = SavvyCalClient("http://sim/v1", token, **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
