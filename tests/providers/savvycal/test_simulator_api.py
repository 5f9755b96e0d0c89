"""The simulated API serves the truth with contract paging, filters, errors, limits, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator import Faults, ManualClock

Filters = list[dict[str, str]]

START = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
AUTH = {"authorization": "Bearer sim-token"}
SIM = SavvyCalSim(21, start=START)
SIM.play(137)


def client_for(app: object, headers: dict[str, str] | None = AUTH) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://sim", headers=headers)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(SIM.asgi_app(rate_limit_per_minute=100_000)) as client:
        yield client


async def ids(
    client: httpx.AsyncClient, page_size: int, filters: Filters | None = None
) -> list[str]:
    seen: list[str] = []
    page, total_pages = 1, 1
    while page <= total_pages:
        params: dict[str, str | int] = {"page": page, "page_size": page_size}
        params["order_by[]"] = "start_at_utc"
        if filters is not None:
            params["filters"] = json.dumps(filters)
        response = await client.get("/v1/appointments", params=params)
        assert response.status_code == 200
        body = response.json()
        meta = body["meta"]
        assert meta["current_page"] == page and meta["page_size"] == page_size
        total_pages = meta["total_pages"]
        assert len(body["data"]) <= page_size
        seen += [row["id"] for row in body["data"]]
        page += 1
    return seen


@settings(max_examples=15, deadline=None)
@given(page_size=st.integers(min_value=1, max_value=100))
def test_pages_cover_every_appointment_exactly_once(page_size: int) -> None:
    async def sweep() -> list[str]:
        async with client_for(SIM.asgi_app(rate_limit_per_minute=100_000)) as client:
            return await ids(client, page_size)

    seen = asyncio.run(sweep())
    assert len(seen) == len(set(seen)) == len(SIM.appointments)
    assert set(seen) == set(SIM.appointments)


async def test_filters_select_upcoming_and_a_time_window(api: httpx.AsyncClient) -> None:
    now = SIM.now.timestamp()
    upcoming = await ids(api, 50, [{"field": "period", "op": "==", "value": "upcoming"}])
    assert set(upcoming) == {
        a["id"] for a in SIM.appointments.values() if a["end_at"]["unix_ts"] > now
    }
    low, high = START, START + timedelta(days=1)
    window = [
        {"field": "start_at", "op": ">=", "value": low.isoformat()},
        {"field": "start_at", "op": "<", "value": high.strftime("%Y-%m-%dT%H:%M:%SZ")},
    ]
    expected = {
        a["id"]
        for a in SIM.appointments.values()
        if low.timestamp() <= a["start_at"]["unix_ts"] < high.timestamp()
    }
    assert set(await ids(api, 50, window)) == expected and expected


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": 101},
        {"page": 0},
        {"filters": "not json"},
        {"filters": json.dumps([{"field": "colour", "op": "==", "value": "red"}])},
        {"order_by[]": "title"},
    ],
)
async def test_bad_queries_are_400(api: httpx.AsyncClient, params: dict[str, str | int]) -> None:
    response = await api.get("/v1/appointments", params=params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["status"] == "400"


async def test_one_appointment_and_the_404_shape(api: httpx.AsyncClient) -> None:
    appointment_id = next(iter(SIM.appointments))
    body = (await api.get(f"/v1/appointments/{appointment_id}")).json()
    assert body["data"]["id"] == appointment_id
    assert not any(key.startswith("_") for key in body["data"])
    missing = await api.get("/v1/appointments/appt_000000000000")
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"detail": "Not found", "status": "404"}]}


async def test_the_api_serves_the_latest_change() -> None:
    sim = SavvyCalSim(4, start=START)
    booked = sim.play(3)[0].appointment_id
    async with client_for(sim.asgi_app()) as client:
        sim.cancel(booked)
        body = (await client.get(f"/v1/appointments/{booked}")).json()
    assert body["data"]["status"] == "canceled"
    assert body["data"]["updated_at"] == sim.history[-1].envelope()["created_at"]


async def test_bearer_token_is_required() -> None:
    async with client_for(SIM.asgi_app(), headers=None) as client:
        assert (await client.get("/v1/appointments")).status_code == 401
        wrong = await client.get("/v1/appointments", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["status"] == "401"


async def test_rate_limit_per_token_with_retry_after() -> None:
    clock = ManualClock()
    sim = SavvyCalSim(1, start=START)
    async with client_for(sim.asgi_app(rate_limit_per_minute=3, clock=clock)) as client:
        for _ in range(3):
            assert (await client.get("/v1/appointments")).status_code == 200
        clock.now = 20.0
        limited = await client.get("/v1/appointments")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "40"
        clock.now = 60.0
        assert (await client.get("/v1/appointments")).status_code == 200
    assert sim.requests_served == 5


async def test_faults_are_deterministic_under_their_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        sim = SavvyCalSim(1, start=START)
        sim.faults = Faults(error_rate=0.2, rate_limit_rate=0.2, seed=seed)
        async with client_for(sim.asgi_app(rate_limit_per_minute=10_000)) as client:
            return [(await client.get("/v1/appointments")).status_code for _ in range(60)]

    first = await statuses(3)
    assert first == await statuses(3)
    assert {200, 429, 500} == set(first)
