"""ConsulariaClient against the simulated Consularia API over real HTTP: auth, fetch, paging,
window filters, shifting pages, 429 Retry-After and 5xx retries, the page cap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetsync.events import to_micros
from meetsync.providers import SweepPage, Window
from meetsync.providers.consularia import PROVIDER, ConsulariaClient
from meetsync.providers.consularia.client import MAX_PAGES
from meetsync.providers.consularia.simulator import DETAIL, LIST, ApiConfig, ConsulariaSim
from meetsync.providers.http import (
    ClientOptions,
    PermanentApiError,
    RequestBudget,
    RetryableApiError,
)
from meetsync.simulator.faults import Faults
from meetsync.simulator.serve import serve_in_background

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(clock_value: datetime = NOW) -> Any:
    return lambda: clock_value


@pytest.fixture
def sim() -> ConsulariaSim:
    sim = ConsulariaSim(11, start=NOW)
    sim.play(60)
    return sim


@pytest.fixture
def root(sim: ConsulariaSim) -> Iterator[str]:
    with serve_in_background(sim.asgi_app(ApiConfig(page_size=7))) as url:
        yield url


@pytest.fixture
async def client(sim: ConsulariaSim, root: str) -> AsyncIterator[ConsulariaClient]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    api = ConsulariaClient(account="acme", api_token=sim.token, api_url=f"{root}/v1",
                           budget=RequestBudget(10_000), options=ClientOptions(sleep=sleep),
                           rotation=5)
    api.slept = slept  # type: ignore[attr-defined]
    yield api
    await api.aclose()


async def fetch(api: ConsulariaClient, appointment_id: str) -> Any:
    return await api.fetch(appointment_id, event_id="r1", type="refetch", priority="refetch",
                           clock=at())


async def sweep(api: ConsulariaClient, window: Window | None = None) -> list[SweepPage]:
    window = window or Window()
    return [page async for page in api.sweep(window, event_id=lambda a: f"s:{a}", clock=at())]


def ids(pages: list[SweepPage]) -> list[str]:
    return [event.appointment_id for page in pages for event in page.events]


async def test_fetch_maps_the_detail_with_participants(sim: ConsulariaSim,
                                                       client: ConsulariaClient) -> None:
    appointment_id = next(iter(sim.appointments))
    event = await fetch(client, appointment_id)
    truth = sim.appointments[appointment_id]
    assert event.appointment_id == appointment_id and event.account == "acme"
    assert event.occurred_at == to_micros(NOW)  # the stamp before the request
    assert [p.unique_id for p in event.participants] == [
        p["unique_id"] for p in truth["participants"]]
    assert event.end_at == sim.end_of(appointment_id).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert client.rotation == 5 and sim.calls[DETAIL] == 1


async def test_fetch_of_a_deleted_or_unknown_appointment_is_none(
        sim: ConsulariaSim, client: ConsulariaClient) -> None:
    gone = next(iter(sim.deleted)) if sim.deleted else "00000000-0000-4000-8000-000000000000"
    assert await fetch(client, gone) is None
    with pytest.raises(PermanentApiError, match="not a Consularia appointment id"):
        await fetch(client, "../appointments")


async def test_a_wrong_token_is_permanent_and_never_echoed(sim: ConsulariaSim, root: str) -> None:
    async with ConsulariaClient(api_token="wrong-token-value", api_url=f"{root}/v1",
                                budget=RequestBudget(100)) as api:
        with pytest.raises(PermanentApiError) as caught:
            await fetch(api, next(iter(sim.appointments)))
        assert "wrong-token-value" not in repr(api)
    assert "401" in str(caught.value) and "wrong-token-value" not in str(caught.value)


async def test_sweep_pages_to_the_end_each_id_once(sim: ConsulariaSim,
                                                   client: ConsulariaClient) -> None:
    pages = await sweep(client)
    assert sorted(ids(pages)) == sorted(sim.appointments)
    assert len(pages) == -(-len(sim.appointments) // 7) == pages[0].of
    assert all(not page.complete and not page.errors for page in pages)
    assert all(e.participants is None for page in pages for e in page.events)
    assert sim.calls[LIST] == len(pages)


async def test_sweep_without_next_links_stops_at_count(sim: ConsulariaSim) -> None:
    with serve_in_background(sim.asgi_app(ApiConfig(page_size=7, links=False))) as url:
        async with ConsulariaClient(api_token=sim.token, api_url=f"{url}/v1",
                                    budget=RequestBudget(1000)) as api:
            pages = await sweep(api)
    assert sorted(ids(pages)) == sorted(sim.appointments)
    assert sim.calls[LIST] == len(pages)  # no request past the last page


async def test_window_becomes_start_and_end_date_filters(sim: ConsulariaSim,
                                                         client: ConsulariaClient) -> None:
    seen: list[httpx.Request] = []
    client._http.event_hooks["request"].append(_record(seen))
    cutoff = NOW - timedelta(hours=24)
    pages = await sweep(client, Window(ending_after=cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")))
    params = seen[0].url.params
    assert params["start_date"] == "2026-03-01T00:00:00Z"  # ending_after - 12 h
    assert params["end_date"] == "2026-04-01T12:00:00Z"  # now + 30 days
    assert params["page"] == "1"
    assert seen[0].url.path == "/v1/appointments/"
    assert seen[0].headers["authorization"] == f"Token {sim.token}"
    horizon = NOW + timedelta(days=30)
    expected = {a for a in sim.appointments
                if sim.end_of(a) > cutoff and sim.appointments[a]["start_date_time"] <= horizon}
    assert set(ids(pages)) == expected

    seen.clear()
    pages = await sweep(client, Window(starting_from="2026-03-03T00:00:00Z",
                                       starting_before="2026-03-05T00:00:00Z"))
    params = seen[0].url.params
    assert (params["start_date"], params["end_date"]) == (
        "2026-03-03T00:00:00Z", "2026-03-05T00:00:00Z")
    low, high = datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)
    assert set(ids(pages)) == {a for a, v in sim.appointments.items()
                               if low <= v["start_date_time"] < high}


def _record(seen: list[httpx.Request]) -> Any:
    async def hook(request: httpx.Request) -> None:
        seen.append(request)
    return hook


async def test_rows_moving_between_pages_are_swept_again(sim: ConsulariaSim,
                                                         client: ConsulariaClient) -> None:
    before = set(sim.appointments)
    sim.churn_per_page = 1
    pages = await sweep(client)
    listed = ids(pages)
    assert len(listed) == len(set(listed))  # each id at most once
    # every appointment that existed throughout the sweep was listed
    survivors = before & set(sim.appointments)
    assert survivors <= set(listed)
    assert sim.calls[LIST] > -(-len(before) // 7)  # it paged again


async def test_429_retry_after_and_5xx_are_retried(sim: ConsulariaSim,
                                                   client: ConsulariaClient) -> None:
    appointment_id = next(iter(sim.appointments))
    sim.faults = Faults(rate_limit_rate=1.0, retry_after=3)
    with pytest.raises(RetryableApiError, match="HTTP 429"):
        await fetch(client, appointment_id)
    assert client.slept == [3.0] * 4  # type: ignore[attr-defined]
    assert client.rate_limited == 5
    sim.faults = Faults(error_rate=0.5, seed=3)
    pages = await sweep(client)
    assert sorted(ids(pages)) == sorted(sim.appointments)
    assert sim.statuses[LIST, 500] > 0 and client.retries > 4


async def test_rate_limit_of_the_simulated_api_is_honoured(sim: ConsulariaSim) -> None:
    with serve_in_background(sim.asgi_app(ApiConfig(rate_limit_per_minute=2))) as url:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        async with ConsulariaClient(api_token=sim.token, api_url=f"{url}/v1",
                                    budget=RequestBudget(100),
                                    options=ClientOptions(sleep=sleep, max_attempts=2)) as api:
            appointment_id = next(iter(sim.appointments))
            await fetch(api, appointment_id)
            await fetch(api, appointment_id)
            with pytest.raises(RetryableApiError):
                await fetch(api, appointment_id)
    assert slept and 1 <= slept[0] <= 60


@pytest.fixture
def endless() -> Iterator[str]:
    """A listing whose every page is full and says there is a next one."""

    async def listing(request: Request) -> Response:
        page = int(request.query_params["page"])
        row = {"id": f"00000000-0000-4000-8000-{page:012d}", "start_date_time": None,
               "status": "scheduled"}
        return JSONResponse({"count": 10**6, "next": "more", "results": [row]})

    app = Starlette(routes=[Route("/v1/appointments/", listing)])
    with serve_in_background(app) as url:
        yield url


async def test_paging_stops_at_the_page_cap(endless: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("meetsync.providers.consularia.client.MAX_PAGES", 3)
    async with ConsulariaClient(api_token="t", api_url=f"{endless}/v1",
                                budget=RequestBudget(100)) as api:
        pages = await sweep(api)
    assert len(pages) == 3 and pages[-1].errors == ["paging stopped after 3 pages"]
    assert MAX_PAGES == 1000


async def test_a_server_ignoring_page_is_not_paged_forever() -> None:
    row = {"id": "00000000-0000-4000-8000-000000000001", "status": "scheduled"}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": 50, "results": [row]})

    async with ConsulariaClient(api_token="t", api_url="http://consularia.test/v1",
                                budget=RequestBudget(100),
                                options=ClientOptions(transport=httpx.MockTransport(answer)),
                                ) as api:
        pages = await sweep(api)
    assert len(pages) == 2 and ids(pages) == [row["id"]]
    assert pages[-1].errors == ["paging stopped: page 2 repeated the page before"]


def test_provider_factories_and_settings() -> None:
    from meetsync.settings import Account

    values = {"api_url": "https://c.example/v1", "api_token": "tok", "poll_interval_seconds": 120,
              "poll_window_days": 30, "rotation_per_sweep": 25, "requests_per_minute": 60}
    full = Account("consularia", "default", values)
    budget = PROVIDER.budget(full)
    assert (budget.per_minute, budget.window) == (60, 60.0)
    api = PROVIDER.api(full, budget)
    assert isinstance(api, ConsulariaClient) and api.rotation == 25 and "tok" not in repr(api)
    assert PROVIDER.poll_interval(full) == 120
    assert PROVIDER.missing_api(full) is None
    assert PROVIDER.webhooks([full]) is None
    bare = Account("consularia", "default", {**values, "api_token": None})
    assert PROVIDER.api(bare, budget) is None
    assert PROVIDER.missing_api(bare) == "CONSULARIA_API_TOKEN"
    named = Account("consularia", "eu", {**values, "api_token": None})
    assert PROVIDER.missing_api(named) == "api_token in [providers.consularia.accounts.eu]"
    assert (PROVIDER.name, PROVIDER.refreshable, PROVIDER.horizon) == (
        "consularia", False, timedelta(hours=24))
