"""The Consularia simulator: deterministic under its seed, and its API serves what the excerpt
documents (token auth, paged list with filters and count, detail, 404s, throttling)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from meetsync.providers.consularia.simulator import (
    DETAIL,
    LIST,
    STATUSES,
    ApiConfig,
    ConsulariaSim,
)
from meetsync.simulator.faults import Faults
from meetsync.simulator.serve import serve_in_background

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LIST_FIELDS = {"id", "title", "start_date_time", "duration_minutes", "status",
               "participant_count", "organization_name", "created_at"}
DETAIL_FIELDS = {"id", "title", "start_date_time", "duration_minutes", "status", "config",
                 "participants", "created_at", "updated_at"}


def test_same_seed_same_play_and_truth() -> None:
    one, two = ConsulariaSim(5, start=START), ConsulariaSim(5, start=START)
    assert one.play(80) == two.play(80)
    assert one.appointments == two.appointments and one.token == two.token
    other = ConsulariaSim(6, start=START)
    assert other.play(80) != one.history


def test_the_workload_changes_what_a_mirror_must_follow() -> None:
    sim = ConsulariaSim(3, start=START)
    kinds = {change.kind for change in sim.play(300)}
    assert {"created", "rescheduled", "participant_added", "participant_removed",
            "participant_renamed", "role_changed", "status:cancelled", "status:active",
            "status:completed", "deleted"} <= kinds
    assert {a["status"] for a in sim.appointments.values()} <= set(STATUSES)
    assert all(a["participants"][0]["role"] in ("moderator", "participant")
               for a in sim.appointments.values())
    assert sim.deleted.isdisjoint(sim.appointments)


@pytest.fixture
def sim() -> ConsulariaSim:
    sim = ConsulariaSim(9, start=START)
    sim.play(40)
    return sim


@pytest.fixture
def root(sim: ConsulariaSim) -> Iterator[str]:
    with serve_in_background(sim.asgi_app(ApiConfig(page_size=10, rate_limit_per_minute=500))
                             ) as url:
        yield url


@pytest.fixture
async def http(sim: ConsulariaSim, root: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{root}/v1",
                                 headers={"authorization": f"Token {sim.token}"}) as client:
        yield client


async def test_auth_is_required(root: str) -> None:
    async with httpx.AsyncClient(base_url=f"{root}/v1") as anonymous:
        missing = await anonymous.get("/appointments/")
        wrong = await anonymous.get("/appointments/", headers={"authorization": "Token nope"})
        bearer = await anonymous.get("/appointments/", headers={"authorization": "Bearer x"})
    assert missing.status_code == wrong.status_code == bearer.status_code == 401
    assert wrong.json() == {"detail": "Invalid token."}


async def test_list_pages_with_count_links_and_list_fields(sim: ConsulariaSim,
                                                           http: httpx.AsyncClient) -> None:
    first = (await http.get("/appointments/")).json()
    assert first["count"] == len(sim.appointments) and first["previous"] is None
    assert "page=2" in first["next"]
    assert all(set(item) == LIST_FIELDS for item in first["results"])
    last_page = -(-len(sim.appointments) // 10)
    last = (await http.get("/appointments/", params={"page": last_page})).json()
    assert last["next"] is None
    past = await http.get("/appointments/", params={"page": last_page + 1})
    assert (past.status_code, past.json()) == (404, {"detail": "Invalid page."})
    assert (await http.get("/appointments/", params={"page": "x"})).status_code == 404
    assert sim.calls[LIST] == 4


async def test_list_filters(sim: ConsulariaSim, http: httpx.AsyncClient) -> None:
    low, high = "2026-03-03T00:00:00Z", "2026-03-06T00:00:00+00:00"
    body = (await http.get("/appointments/", params={"start_date": low, "end_date": high,
                                                      "page": 1})).json()
    lo, hi = datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC)
    assert body["count"] == sum(lo <= a["start_date_time"] <= hi
                                for a in sim.appointments.values())
    person = next(iter(sim.appointments.values()))["participants"][0]["unique_id"]
    body = (await http.get("/appointments/", params={"participant_unique_id": person})).json()
    assert body["count"] >= 1
    bad = await http.get("/appointments/", params={"start_date": "soon"})
    assert (bad.status_code, bad.json()) == (400, {"start_date": ["Enter a valid date/time."]})


async def test_detail_and_deleted(sim: ConsulariaSim, http: httpx.AsyncClient) -> None:
    spaced = [a for a in sim.appointments.values() if a["_spaced"]]
    plain = [a for a in sim.appointments.values() if not a["_spaced"]]
    assert spaced and plain  # both documented datetime forms are served
    body = (await http.get(f"/appointments/{spaced[0]['id']}/")).json()
    assert set(body) == DETAIL_FIELDS and " " in body["start_date_time"]
    assert body["participants"] == spaced[0]["participants"]
    assert (await http.get(f"/appointments/{plain[0]['id']}/")).json()[
        "start_date_time"].endswith("Z")
    unknown = await http.get("/appointments/00000000-0000-4000-8000-000000000000/")
    assert unknown.status_code == 404
    assert sim.calls[DETAIL] == 3 and sim.statuses[DETAIL, 404] == 1


async def test_throttle_and_faults(sim: ConsulariaSim) -> None:
    with serve_in_background(sim.asgi_app(ApiConfig(rate_limit_per_minute=1))) as url:
        async with httpx.AsyncClient(base_url=f"{url}/v1",
                                     headers={"authorization": f"Token {sim.token}"}) as http:
            assert (await http.get("/appointments/")).status_code == 200
            throttled = await http.get("/appointments/")
    assert throttled.status_code == 429 and 1 <= int(throttled.headers["retry-after"]) <= 60
    sim.faults = Faults(error_rate=1.0)
    with serve_in_background(sim.asgi_app()) as url:
        async with httpx.AsyncClient(base_url=f"{url}/v1",
                                     headers={"authorization": f"Token {sim.token}"}) as http:
            assert (await http.get("/appointments/")).status_code == 500


async def test_churn_moves_rows_between_pages_deterministically(http: httpx.AsyncClient,
                                                                sim: ConsulariaSim) -> None:
    sim.churn_per_page = 2
    before = dict(sim.appointments)
    await http.get("/appointments/")
    assert set(sim.appointments) != set(before)
    twin = ConsulariaSim(9, start=START)
    twin.play(40)
    twin.churn_per_page = 2
    twin.churn()
    assert set(twin.appointments) == set(sim.appointments)
