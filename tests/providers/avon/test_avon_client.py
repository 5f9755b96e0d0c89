"""AvonClient against the simulated Avon over real HTTP: token and x-jwt, refresh on 401,
404 → None, paging (capped pages, has_more, a server ignoring offset), 429 and 5xx retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meetsync.providers import SweepPage, Window
from meetsync.providers.avon import PROVIDER, AvonClient
from meetsync.providers.avon.simulator import AvonSim
from meetsync.providers.avon.simulator.api import GET_APPOINTMENT, LIST_APPOINTMENTS, TOKEN
from meetsync.providers.http import (
    ClientOptions,
    PermanentApiError,
    RequestBudget,
    RetryableApiError,
)
from meetsync.settings import Account
from meetsync.simulator import Faults, ManualClock, serve_in_background

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def now() -> datetime:
    return NOW


def event_id(appointment_id: str) -> str:
    return f"sweep:{appointment_id}"


class Harness:
    def __init__(self, sim: AvonSim, root: str, clock: ManualClock) -> None:
        self.sim, self.root, self.clock = sim, root, clock
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        # The client's waits move the simulated API's clock on (its rate limit, its tokens).
        self.slept.append(seconds)
        self.clock.now += seconds

    def client(self, *, max_attempts: int = 6, **overrides: Any) -> AvonClient:
        c = self.sim.credentials
        arguments: dict[str, Any] = {
            "api_url": self.root, "client_id": c.client_id, "client_secret": c.client_secret,
            "user_jwt": c.user_jwt, "avon_account": c.account, "budget": RequestBudget(10_000),
            "options": ClientOptions(sleep=self.sleep, max_attempts=max_attempts),
        } | overrides
        return AvonClient(**arguments)


def harness_for(sim: AvonSim, clock: ManualClock, **config: Any) -> Iterator[Harness]:
    with serve_in_background(sim.asgi_app(**config)) as root:
        yield Harness(sim, root, clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> AvonSim:
    sim = AvonSim(3, start=NOW, clock=clock)
    sim.play(30)
    return sim


@pytest.fixture
def harness(sim: AvonSim, clock: ManualClock) -> Iterator[Harness]:
    yield from harness_for(sim, clock)


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[AvonClient]:
    async with harness.client() as client:
        yield client


async def test_fetch_authenticates_and_maps(harness: Harness, client: AvonClient) -> None:
    sim = harness.sim
    for appointment_id in list(sim.appointments)[:5]:
        found = await client.fetch(appointment_id, event_id="e", type="refetch",
                                   priority="refetch", clock=now)
        assert found is not None
        assert found.appointment_id == appointment_id
        shown = sim.shown(appointment_id)
        assert found.occurred_at == shown["last_updated_at"] * 1000
        expected = shown["status_history"][-1]["status"].replace("cancelled", "canceled")
        assert found.appointment_status == expected
        if shown["interaction_type"] == "video_call":
            assert found.meeting is not None
            assert found.meeting.join_url == shown["video_call"]["join_url"]
        else:
            assert found.no_meeting
    assert client.tokens_fetched == 1
    assert sim.calls[TOKEN] == 1 and sim.calls[GET_APPOINTMENT] == 5


async def test_iso_times(clock: ManualClock) -> None:
    sim = AvonSim(4, start=NOW, clock=clock, time_format="iso")
    sim.play(5)
    for harness in harness_for(sim, clock):
        async with harness.client() as client:
            appointment_id = next(iter(sim.appointments))
            found = await client.fetch(appointment_id, event_id="e", type="refetch",
                                       priority="refetch", clock=now)
            assert found is not None and found.start_at is not None
            assert isinstance(sim.shown(appointment_id)["start_time"], str)
            assert found.start_at == sim.shown(appointment_id)["start_time"][:19] + "Z"


async def test_unknown_appointment_is_none(client: AvonClient) -> None:
    assert await client.fetch("appt_nosuchthing", event_id="e", type="refetch",
                              priority="refetch", clock=now) is None


async def test_unsafe_id_is_refused_without_a_request(harness: Harness, client: AvonClient) -> None:
    with pytest.raises(PermanentApiError):
        await client.fetch("appt_../../v2/patients", event_id="e", type="refetch",
                           priority="refetch", clock=now)
    assert sum(harness.sim.calls.values()) == 0


async def test_expired_token_is_refreshed_once(harness: Harness, client: AvonClient) -> None:
    appointment_id = next(iter(harness.sim.appointments))
    assert await client.fetch(appointment_id, event_id="e", type="t", priority="refetch",
                              clock=now)
    harness.clock.now += 3601  # the API's clock: the token died; the client does not know
    assert await client.fetch(appointment_id, event_id="e", type="t", priority="refetch",
                              clock=now)
    assert client.tokens_fetched == 2
    assert harness.sim.statuses[(GET_APPOINTMENT, 401)] == 1


async def test_bad_user_jwt_is_permanent_and_secret_free(harness: Harness) -> None:
    async with harness.client(user_jwt="eyJ.wrong.jwt") as client:
        with pytest.raises(PermanentApiError) as caught:
            await client.fetch(next(iter(harness.sim.appointments)), event_id="e", type="t",
                               priority="refetch", clock=now)
    assert caught.value.status == 401
    message = str(caught.value)
    for secret in ("eyJ.wrong.jwt", harness.sim.credentials.client_secret, *harness.sim.tokens):
        assert secret not in message
    assert client.tokens_fetched == 2  # one refresh, then it gives up


async def test_bad_client_secret(harness: Harness) -> None:
    async with harness.client(client_secret="nope-not-it") as client:
        with pytest.raises(PermanentApiError) as caught:
            await client.fetch(next(iter(harness.sim.appointments)), event_id="e", type="t",
                               priority="refetch", clock=now)
    assert caught.value.status == 401
    assert "nope-not-it" not in str(caught.value)


async def test_missing_account_header_is_refused(harness: Harness) -> None:
    async with harness.client(avon_account=None) as client:
        with pytest.raises(PermanentApiError) as caught:
            await client.fetch(next(iter(harness.sim.appointments)), event_id="e", type="t",
                               priority="refetch", clock=now)
    assert caught.value.status == 403


EVERYTHING = Window()


async def collect(
    client: AvonClient, window: Window = EVERYTHING, **options: Any
) -> list[SweepPage]:
    return [page async for page in client.sweep(window, event_id=event_id, clock=now, **options)]


@pytest.mark.parametrize(("has_more", "max_page_size", "requests"), [
    (False, 100, 4),  # 100, 100, 50, then an empty page ends it
    (True, 100, 3),   # has_more False on the third
    (False, 30, 10),  # the server caps pages below our limit: still read to the end
])
async def test_sweep_pages(
    clock: ManualClock, has_more: bool, max_page_size: int, requests: int
) -> None:
    sim = AvonSim(5, start=NOW, clock=clock)
    for _ in range(250):
        sim.create()
    for harness in harness_for(sim, clock, has_more=has_more, max_page_size=max_page_size):
        async with harness.client() as client:
            pages = await collect(client)
    ids = [e.appointment_id for page in pages for e in page.events]
    assert sorted(ids) == sorted(sim.appointments)
    assert all(page.complete and not page.errors for page in pages)
    assert [page.number for page in pages] == list(range(1, len(pages) + 1))
    assert sim.calls[LIST_APPOINTMENTS] == requests
    assert all(e.id == f"sweep:{e.appointment_id}" for page in pages for e in page.events)


async def test_sweep_window(harness: Harness, client: AvonClient) -> None:
    sim = harness.sim
    cutoff = NOW + timedelta(days=1)
    window = Window(ending_after=NOW.isoformat(), starting_before=cutoff.isoformat())
    ids = {e.appointment_id for page in await collect(client, window) for e in page.events}
    expected = {a for a, v in sim.appointments.items()
                if v["end_time"] > NOW and v["start_time"] < cutoff}
    assert ids == expected and ids != set(sim.appointments)


async def test_sweep_stops_when_offset_is_ignored() -> None:
    rows = [{"id": f"appt_{n:04d}", "object": "appointment"} for n in range(3)]
    calls: list[dict[str, str]] = []

    async def token(request: Request) -> JSONResponse:
        return JSONResponse({"access_token": "t"})

    async def listing(request: Request) -> JSONResponse:
        calls.append(dict(request.query_params))
        return JSONResponse({"object": "list", "data": rows})  # offset ignored

    app = Starlette(routes=[Route("/v2/auth/token", token, methods=["POST"]),
                            Route("/v2/appointments", listing)])
    with serve_in_background(app) as root:
        async with AvonClient(api_url=root, client_id="c", client_secret="s", user_jwt="j",
                              budget=RequestBudget(100)) as client:
            pages = await collect(client, page_size=3)
    assert len(calls) == 2 and calls[1]["offset"] == "3"
    assert [len(p.events) for p in pages] == [3, 0]
    assert pages[-1].errors == ["paging stopped: page 2 listed nothing new"]


async def test_rate_limit_retry_after_is_honoured(sim: AvonSim, clock: ManualClock) -> None:
    for harness in harness_for(sim, clock, per_minute_limit=2):
        async with harness.client() as client:
            for appointment_id in list(sim.appointments)[:3]:
                assert await client.fetch(appointment_id, event_id="e", type="t",
                                          priority="refetch", clock=now)
            assert client.rate_limited == 1 and client.retries == 1
            assert harness.slept == [60.0]


async def test_server_errors_are_retried(harness: Harness, client: AvonClient) -> None:
    harness.sim.faults = Faults(error_rate=0.5, seed=2)
    for appointment_id in list(harness.sim.appointments)[:6]:
        assert await client.fetch(appointment_id, event_id="e", type="t", priority="refetch",
                                  clock=now)
    assert client.retries > 0
    assert harness.sim.statuses[(GET_APPOINTMENT, 500)] == client.retries


async def test_errors_persisting_become_retryable(harness: Harness) -> None:
    harness.sim.faults = Faults(error_rate=1.0)
    async with harness.client(max_attempts=3) as client:
        with pytest.raises(RetryableApiError):
            await client.fetch(next(iter(harness.sim.appointments)), event_id="e", type="t",
                               priority="refetch", clock=now)


def account(name: str = "default", **values: Any) -> Account:
    return Account("avon", name, {"requests_per_minute": 60, **values})


def test_provider_api_needs_credentials() -> None:
    full = account(api_url="https://x.avonhealth.com", client_id="c", client_secret="s",
                   user_jwt="j")
    budget = PROVIDER.budget(full)
    assert budget.per_minute == 60
    assert isinstance(PROVIDER.api(full, budget), AvonClient)
    assert PROVIDER.missing_api(full) is None
    assert PROVIDER.api(account(client_id="c"), budget) is None
    assert PROVIDER.missing_api(account(client_id="c")) == (
        "AVON_API_URL and AVON_CLIENT_SECRET and AVON_USER_JWT")
    assert PROVIDER.missing_api(account("east", api_url="https://x", user_jwt="j")) == (
        "client_id, client_secret in [providers.avon.accounts.east]")
    assert PROVIDER.poll_interval(full) is None
    assert not PROVIDER.refreshable and PROVIDER.horizon == timedelta(hours=24)
