"""Fixtures for SavvyCal's API client tests: a simulated provider, clients over its API (on the
hand-driven ``clock`` of ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from meetsync.providers.http import ClientOptions
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

    def make(*, app: Starlette | None = None, token: str | None = None,
             **options: Any) -> SavvyCalClient:
        """``options`` are ``ClientOptions`` fields over this fixture's transport and sleep."""
        transport = httpx.ASGITransport(app=app or sim.asgi_app(clock=clock))
        client = SavvyCalClient(
            "http://sim/v1", token or sim.token, budget=RequestBudget(10_000),
            options=replace(ClientOptions(transport=transport, sleep=clock.auto_sleep), **options),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
