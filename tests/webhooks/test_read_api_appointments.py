"""``GET /v1/{provider}/appointments/{id}`` serves the appointment, its participants and its
meeting; a meeting hosted on another mirrored provider serves that one's live host_url, never a
dead one, and ``?fresh=true`` refetches it there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from starlette.applications import Starlette

from meetsync.events import Event, Meeting, Occurrence, Participant, iso_utc
from meetsync.queue import LaneKeys
from meetsync.store import open_store
from meetsync.webhooks.read_api import ReadOnlyMirror, read_routes
from tests.helpers.savvycal import savvycal_settings

TOKEN = "read-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
HOSTED = "85746065432"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def booking(event_id: str, at: int, *, host_url: str | None = None,
            participants: tuple[Participant, ...] | None = None,
            occurrences: tuple[Occurrence, ...] | None = None) -> Event:
    """Provider a's appointment; its meeting is hosted on the provider that mirrors HOSTED."""
    return Event(
        id=event_id, provider="a", type="appointment.updated", occurred_at=at,
        appointment_id="appt_a", appointment_status="scheduled", start_at="2098-12-31T23:00:00Z",
        end_at="2099-01-01T00:00:00Z", participants=participants, occurrences=occurrences,
        meeting=Meeting(id="amtg_a", status="created", external_meeting_id=HOSTED,
                        join_url="https://a/j", host_url=host_url),
    )


def hosted(event_id: str, at: int, provider: str, start_url: str,
           expires: datetime = T0 + HOUR) -> Event:
    """The hosting provider's own meeting, keyed by its numeric id (as is its appointment)."""
    return Event(
        id=event_id, provider=provider, type="meeting.updated", occurred_at=at,
        appointment_id=HOSTED, appointment_status="scheduled", end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id=HOSTED, status="created", external_meeting_id=HOSTED,
                        join_url=f"https://{provider}/j", host_url=start_url,
                        host_url_expires_at=iso_utc(expires)),
    )


def write(path: Path, *events: Event, at: datetime = T0) -> None:
    with open_store(path, clock=lambda: at) as store:
        _, failures = store.apply(list(events))
        assert failures == []


class Clock:
    """The read API's "now", moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def read_api(
    path: Path, clock: Clock, redis: aioredis.Redis | None = None, wait: int = 0
) -> AsyncIterator[httpx.AsyncClient]:
    settings = savvycal_settings(db_path=str(path), read_token=TOKEN, refresh_wait_seconds=wait)
    mirror = ReadOnlyMirror(str(path), clock=clock)
    transport = httpx.ASGITransport(app=Starlette(routes=read_routes(settings, mirror, redis)))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        mirror.close()


async def test_the_appointment_route_serves_appointment_participants_and_meeting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mirror.db"
    host = Participant("p_host", role="host", unique_id="u1", display_name="Ann")
    later = Occurrence("o_1", "2099-01-08T23:00:00Z", "2099-01-09T00:00:00Z", "deleted")
    first = Occurrence("o_2", "2098-12-31T23:00:00Z", "2099-01-01T00:00:00Z", "available")
    write(path, booking("evt_1", 1, participants=(host, Participant("p_guest")),
                        occurrences=(later, first)),
          Event(id="evt_9", provider="a", type="t", occurred_at=1, appointment_id="appt_none"))
    async with read_api(path, Clock()) as http:
        assert (await http.get("/v1/a/appointments/appt_a")).status_code == 401
        assert (await http.get("/v1/a/appointments/appt_x", headers=AUTH)).status_code == 404
        assert (await http.get("/v1/b/appointments/appt_a", headers=AUTH)).status_code == 404
        body = (await http.get("/v1/a/appointments/appt_a", headers=AUTH)).json()
        assert set(body) == {"id", "provider", "account", "meeting_id", "status", "start_at",
                             "end_at", "synced_at", "needs_refetch", "participants",
                             "occurrences", "meeting"}
        assert (body["id"], body["provider"], body["meeting_id"]) == ("appt_a", "a", "amtg_a")
        assert body["participants"] == [
            {"id": "p_guest", "role": None, "unique_id": None, "display_name": None},
            {"id": "p_host", "role": "host", "unique_id": "u1", "display_name": "Ann"},
        ]
        assert body["occurrences"] == [  # by start
            {"id": "o_2", "start_at": "2098-12-31T23:00:00Z", "end_at": "2099-01-01T00:00:00Z",
             "status": "available"},
            {"id": "o_1", "start_at": "2099-01-08T23:00:00Z", "end_at": "2099-01-09T00:00:00Z",
             "status": "deleted"},
        ]
        meeting = (await http.get("/v1/a/appointments/appt_a/meeting", headers=AUTH)).json()
        assert body["meeting"] == meeting
        assert (meeting["id"], meeting["linked"], meeting["host_url_source"]) == (
            "amtg_a", None, None)
        bare = (await http.get("/v1/a/appointments/appt_none", headers=AUTH)).json()
        assert (bare["participants"], bare["occurrences"], bare["meeting"]) == ([], [], None)


async def test_neither_appointment_route_shadows_the_other(tmp_path: Path) -> None:
    """/v1/appointments/appointments/meeting is the legacy provider's appointment
    "appointments"' meeting; /v1/{provider}/appointments/appointments that appointment."""
    path = tmp_path / "mirror.db"
    write(path, Event(id="evt_1", provider="savvycal", type="t", occurred_at=1,
                      appointment_id="appointments",
                      meeting=Meeting(id="amtg_9", status="created")))
    async with read_api(path, Clock()) as http:
        response = await http.get("/v1/appointments/appointments/meeting", headers=AUTH)
        assert response.status_code == 200 and response.json()["id"] == "amtg_9"
        response = await http.get("/v1/savvycal/appointments/appointments", headers=AUTH)
        assert response.status_code == 200
        assert (response.json()["id"], response.json()["meeting"]["id"]) == (
            "appointments", "amtg_9")
        response = await http.get("/v1/savvycal/appointments/appointments/meeting", headers=AUTH)
        assert response.status_code == 200 and response.json()["id"] == "amtg_9"
        response = await http.get("/v1/savvycal/meetings/amtg_9", headers=AUTH)
        assert response.status_code == 200 and response.json()["id"] == "amtg_9"


async def test_a_hosted_meeting_serves_the_linked_live_host_url_and_never_a_dead_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mirror.db"
    write(path, booking("evt_1", 1), hosted("evt_1", 1, "b", "https://b/start"))
    clock = Clock()
    paths = ("/v1/a/appointments/appt_a/meeting", "/v1/a/meetings/amtg_a")
    async with read_api(path, clock) as http:
        for served in [*[(await http.get(p, headers=AUTH)).json() for p in paths],
                       (await http.get("/v1/a/appointments/appt_a", headers=AUTH)).json()[
                           "meeting"]]:
            assert (served["provider"], served["host_url"], served["host_url_source"]) == (
                "a", "https://b/start", "b")
            assert served["host_url_expires_at"] == iso_utc(T0 + HOUR)
            assert served["linked"] == {
                "provider": "b", "meeting_id": HOSTED, "host_url": "https://b/start",
                "host_url_expires_at": iso_utc(T0 + HOUR), "host_url_refresh_pending": False}
        own = (await http.get(f"/v1/b/meetings/{HOSTED}", headers=AUTH)).json()
        assert (own["host_url_source"], own["linked"]) == ("b", None)

        clock.now = T0 + HOUR  # b's start URL dies
        for p in paths:
            served = (await http.get(p, headers=AUTH, params={"fresh": "true"})).json()
            assert (served["host_url"], served["host_url_source"]) == (None, None)
            assert served["host_url_refresh_pending"] is False  # b renews nothing on a fetch
            assert served["linked"]["host_url"] is None
            assert served["linked"]["host_url_refresh_pending"] is False


async def test_a_meeting_with_its_own_host_url_serves_it(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    write(path, booking("evt_1", 1, host_url="https://a/host"),
          hosted("evt_1", 1, "b", "https://b/start"))
    async with read_api(path, Clock()) as http:
        served = (await http.get("/v1/a/appointments/appt_a/meeting", headers=AUTH)).json()
        assert (served["host_url"], served["host_url_source"]) == ("https://a/host", "a")
        assert served["linked"]["host_url"] == "https://b/start"


async def test_fresh_refetches_a_dead_linked_host_url_from_its_provider(
    tmp_path: Path, redis: aioredis.Redis,
) -> None:
    """The hosting provider renews its start URL on a fetch ("zoom" is refreshable): a dead
    one is pending, and ``?fresh=true`` queues the refetch of the hosting appointment."""
    path = tmp_path / "mirror.db"
    write(path, booking("evt_1", 1), hosted("evt_1", 1, "zoom", "https://zoom/s/old"))
    clock = Clock()
    clock.now = T0 + HOUR
    lane = LaneKeys.of("zoom", "default").waiting

    async def worker() -> None:
        """What the worker's refetch does: the provider's newer snapshot, a new start URL."""
        for _ in range(100):
            if await redis.zscore(lane, HOSTED) is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no refetch was queued")
        write(path, hosted("evt_2", 2, "zoom", "https://zoom/s/new", expires=T0 + 3 * HOUR),
              at=clock.now)

    async with read_api(path, clock, redis, wait=5) as http:
        async def get(**params: str) -> dict[str, object]:
            response = await http.get("/v1/a/appointments/appt_a", headers=AUTH, params=params)
            assert response.status_code == 200
            served: dict[str, object] = response.json()["meeting"]
            return served

        pending = await get()
        assert (pending["host_url"], pending["host_url_refresh_pending"]) == (None, True)
        assert await redis.zscore(lane, HOSTED) is None
        refetch: asyncio.Task[None] = asyncio.create_task(worker())
        fresh = await get(fresh="true")
        await refetch
        assert (fresh["host_url"], fresh["host_url_source"]) == ("https://zoom/s/new", "zoom")
        assert fresh["host_url_refresh_pending"] is False


async def test_a_fresh_that_is_not_a_boolean_is_400(tmp_path: Path) -> None:
    """schemathesis found it: ``?fresh=<anything>`` was read as false and answered 200."""
    path = tmp_path / "mirror.db"
    write(path, booking("evt_1", 1))
    async with read_api(path, Clock()) as http:
        response = await http.get("/v1/a/meetings/none?fresh=maybe", headers=AUTH)
        assert (await http.get("/v1/a/meetings/none?fresh=true", headers=AUTH)).status_code == 404
    assert response.status_code == 400
    assert "fresh" in response.json()["error"]
