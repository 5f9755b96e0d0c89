"""ZoomClient against a fake Zoom over real HTTP: OAuth, fetch, paging, 429s and 5xx retries."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetsync.events import to_micros
from meetsync.providers import SignatureError, SweepPage, Window
from meetsync.providers.http import (
    ClientOptions,
    PermanentApiError,
    RequestBudget,
    RetryableApiError,
)
from meetsync.providers.zoom import PROVIDER, ZoomClient
from meetsync.providers.zoom.client import MAX_PAGES
from meetsync.settings import Account
from meetsync.simulator.serve import serve_in_background

NOW = datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
BASIC = "Basic " + base64.b64encode(b"cid:csecret").decode()


def row(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": n, "uuid": f"u{n}", "start_time": "2025-03-01T16:00:00Z", "duration": 30,
            "join_url": f"https://zoom.us/j/{n}", **extra}


@dataclass
class FakeZoom:
    """Scripted Zoom: a token endpoint and the two meeting endpoints."""

    tokens: int = 0
    valid: set[str] = field(default_factory=set)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)  # next_page_token -> body
    live: dict[str, Any] = field(default_factory=lambda: {"meetings": []})  # type=live's page
    faults: list[Response] = field(default_factory=list)  # served first, one per request
    seen: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/v2/meetings/{id}", self.meeting),
            Route("/v2/users/{user}/meetings", self.listing),
        ])

    async def token(self, request: Request) -> Response:
        # a form body (python-multipart is not installed: parse it by hand)
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_forms.append(form)
        if request.headers.get("authorization") != BASIC:
            return JSONResponse({"reason": "Invalid client_id or client_secret"}, 401)
        self.tokens += 1
        token = f"tok{self.tokens}"
        self.valid.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer",
                             "expires_in": 3600, "scope": "meeting:read:admin"})

    def _check(self, request: Request) -> Response | None:
        self.seen.append(f"{request.url.path}?{request.url.query}")
        if self.faults:
            return self.faults.pop(0)
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid:
            return JSONResponse({"code": 124, "message": "Invalid access token."}, 401)
        return None

    async def meeting(self, request: Request) -> Response:
        if (fault := self._check(request)) is not None:
            return fault
        found = self.meetings.get(request.path_params["id"])
        if found is None:
            return JSONResponse({"code": 3001, "message": "Meeting does not exist"}, 404)
        return JSONResponse(found)

    async def listing(self, request: Request) -> Response:
        if (fault := self._check(request)) is not None:
            return fault
        if request.query_params.get("type") == "live":
            return JSONResponse(self.live)
        return JSONResponse(self.pages[request.query_params.get("next_page_token", "")])


@pytest.fixture
def fake() -> Iterator[tuple[FakeZoom, str]]:
    zoom = FakeZoom()
    with serve_in_background(zoom.app()) as url:
        yield zoom, url


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(fake: tuple[FakeZoom, str]) -> AsyncIterator[ZoomClient]:
    _, url = fake
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    api = ZoomClient(account="acme", account_id="acct1", client_id="cid",
                     client_secret="csecret", budget=RequestBudget(1000, window=1.0),
                     api_url=f"{url}/v2", oauth_url=f"{url}/oauth/token", ttl_seconds=600,
                     clock=Clock(), options=ClientOptions(sleep=sleep),
                     user_ids=["me"])  # one scripted user
    api.slept = slept  # type: ignore[attr-defined]
    yield api
    await api.aclose()


async def fetch(api: ZoomClient, meeting_id: str = "85746065432") -> Any:
    return await api.fetch(meeting_id, event_id="r1", type="refetch", priority="refetch",
                           clock=lambda: NOW)


async def test_fetch_authenticates_and_maps(fake: tuple[FakeZoom, str], client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.meetings["85746065432"] = row(85746065432, start_url="https://zoom.us/s/1?zak=z",
                                       password="pw")
    event = await fetch(client)
    # past occurrences too: a fetched list replaces the mirror's set
    assert zoom.seen == ["/v2/meetings/85746065432?show_previous_occurrences=true"]
    assert zoom.token_forms == [{"grant_type": "account_credentials", "account_id": "acct1"}]
    assert event.occurred_at == to_micros(NOW) and event.account == "acme"
    assert event.meeting.host_url == "https://zoom.us/s/1?zak=z"
    assert event.meeting.host_url_expires_at == "2025-03-01T15:10:00Z"
    await fetch(client)
    assert zoom.tokens == 1  # cached
    assert client.budget.spent == 3  # the token request is budgeted too


async def test_token_refreshed_before_expiry(fake: tuple[FakeZoom, str],
                                             client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.meetings["1"] = row(1)
    await fetch(client, "1")
    client._clock.now = 3600 - 299  # type: ignore[attr-defined]
    await fetch(client, "1")
    assert zoom.tokens == 2


async def test_401_refreshes_the_token_once(fake: tuple[FakeZoom, str],
                                            client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.meetings["1"] = row(1)
    await fetch(client, "1")
    zoom.valid.clear()  # Zoom revoked it
    assert (await fetch(client, "1")).appointment_id == "1"
    assert zoom.tokens == 2
    zoom.faults = [JSONResponse({"code": 124}, 401), JSONResponse({"code": 124}, 401)]
    with pytest.raises(PermanentApiError, match="HTTP 401"):
        await fetch(client, "1")


async def test_bad_client_credentials(fake: tuple[FakeZoom, str]) -> None:
    _, url = fake
    async with ZoomClient(account_id="a", client_id="cid", client_secret="wrong-secret",
                          budget=RequestBudget(100, window=1.0), api_url=f"{url}/v2",
                          oauth_url=f"{url}/oauth/token") as api:
        with pytest.raises(PermanentApiError) as caught:
            await fetch(api, "1")
    assert "401" in str(caught.value) and "wrong-secret" not in str(caught.value)


async def test_404_is_none(client: ZoomClient) -> None:
    assert await fetch(client, "404404") is None


async def test_not_a_meeting_id(client: ZoomClient) -> None:
    with pytest.raises(PermanentApiError):
        await fetch(client, "../users/me")


async def test_429_retry_after_seconds_and_date(fake: tuple[FakeZoom, str],
                                                client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.meetings["1"] = row(1)
    await fetch(client, "1")
    zoom.faults = [
        Response(status_code=429, headers={"retry-after": "3"}),
        Response(status_code=429, headers={"retry-after": "2000-01-01T00:00:00Z"}),
    ]
    assert (await fetch(client, "1")) is not None
    assert client.slept == [3.0, 0.0]  # type: ignore[attr-defined]
    assert client.rate_limited == 2 and client.retries == 2


async def test_5xx_retried_then_given_up(fake: tuple[FakeZoom, str], client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.meetings["1"] = row(1)
    zoom.faults = [Response(status_code=503), Response(status_code=502)]
    assert (await fetch(client, "1")) is not None
    zoom.faults = [Response(status_code=500)] * 5
    with pytest.raises(RetryableApiError, match="HTTP 500"):
        await fetch(client, "1")


async def sweep(api: ZoomClient, window: Window | None = None) -> list[SweepPage]:
    return [page async for page in api.sweep(window or Window(), event_id=lambda i: f"s:{i}",
                                             clock=lambda: NOW)]


async def test_sweep_pages_by_token(fake: tuple[FakeZoom, str], client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.pages = {
        "": {"page_size": 300, "next_page_token": "p2", "meetings": [row(1), row(2)]},
        "p2": {"page_size": 300, "next_page_token": "", "meetings": [row(2), row(3), {"id": "x"}]},
    }
    pages = await sweep(client)
    assert [[e.appointment_id for e in p.events] for p in pages] == [["1", "2"], ["3"]]
    assert [(p.number, p.complete, p.of) for p in pages] == [(1, False, None), (2, False, None)]
    assert len(pages[1].errors) == 1 and pages[0].errors == []
    listed = pages[0].events[0]
    assert listed.id == "s:1" and listed.meeting is not None and listed.meeting.host_url is None
    assert zoom.seen[0] == "/v2/users/me/meetings?type=live&page_size=300"
    assert zoom.seen[1] == "/v2/users/me/meetings?type=scheduled&page_size=300"
    assert zoom.seen[2].endswith("&next_page_token=p2")


async def test_sweep_says_started_for_what_type_live_lists(fake: tuple[FakeZoom, str],
                                                           client: ZoomClient) -> None:
    # List rows carry no status: a lost meeting.started must still show as drift.
    zoom, _ = fake
    zoom.live = {"next_page_token": "", "meetings": [row(2)]}
    zoom.pages = {"": {"next_page_token": "", "meetings": [row(1), row(2)]}}
    pages = await sweep(client)
    assert [(e.appointment_id, e.appointment_status) for e in pages[0].events] == [
        ("1", "scheduled"), ("2", "started")]


async def test_sweep_window(fake: tuple[FakeZoom, str], client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.pages = {"": {"meetings": [row(1), row(2, start_time="2025-03-05T16:00:00Z")]}}
    pages = await sweep(client, Window(starting_before="2025-03-02T00:00:00Z"))
    assert [e.appointment_id for e in pages[0].events] == ["1"]


async def test_sweep_stops_on_a_repeated_token(fake: tuple[FakeZoom, str],
                                               client: ZoomClient) -> None:
    zoom, _ = fake
    zoom.pages = {"": {"next_page_token": "a", "meetings": [row(1)]},
                  "a": {"next_page_token": "a", "meetings": [row(2)]}}
    pages = await sweep(client)
    assert len(pages) == 2 and pages[-1].errors == ["paging stopped: next_page_token repeated"]


async def test_sweep_stops_after_max_pages(fake: tuple[FakeZoom, str], client: ZoomClient,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    zoom, _ = fake
    monkeypatch.setattr("meetsync.providers.zoom.client.MAX_PAGES", 3)
    zoom.pages = {"": {"next_page_token": "t1", "meetings": []}}
    zoom.pages |= {f"t{n}": {"next_page_token": f"t{n + 1}", "meetings": []} for n in range(1, 9)}
    pages = await sweep(client)
    assert len(pages) == 3 and pages[-1].errors == ["paging stopped after 3 pages"]
    assert MAX_PAGES == 1000


def test_provider_factories() -> None:
    full = Account("zoom", "default", {"account_id": "a", "client_id": "c",
                                       "client_secret": "s", "start_url_ttl_seconds": 7200,
                                       "requests_per_second": 4, "user_id": "me"})
    budget = PROVIDER.budget(full)
    assert (budget.per_minute, budget.window) == (4, 1.0)
    api = PROVIDER.api(full, budget)
    assert isinstance(api, ZoomClient) and api.provider == "zoom" and "s" not in repr(api)
    assert PROVIDER.missing_api(full) is None
    bare = Account("zoom", "default", {"client_id": "c"})
    assert PROVIDER.api(bare, budget) is None
    assert PROVIDER.missing_api(bare) == "ZOOM_ACCOUNT_ID and ZOOM_CLIENT_SECRET"
    named = Account("zoom", "eu", {})
    assert "client_secret" in PROVIDER.missing_api(named)
    with pytest.raises(SignatureError, match="no secret token"):  # 401, as for SavvyCal
        PROVIDER.webhooks([bare]).verify(b"{}", {})
    assert (PROVIDER.name, PROVIDER.refreshable, PROVIDER.horizon.total_seconds()) == (
        "zoom", True, 900)
