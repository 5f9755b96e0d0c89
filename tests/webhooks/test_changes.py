"""The change feed over real HTTP: pages follow the change log; the SSE stream sends the
backlog then each change as it is committed, resumes after Last-Event-ID with exactly the
missed changes, and ends cleanly when its client leaves or the feed stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event, Meeting
from meetsync.providers import LEGACY_PROVIDER
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.webhooks.changes import ChangeFeed
from meetsync.webhooks.read_api import ReadOnlyMirror
from tests.helpers.savvycal import savvycal_settings

TOKEN = "changes-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def event(n: int) -> Event:
    mid = f"amtg_{n}"
    return Event(id=f"evt_{n}", provider=LEGACY_PROVIDER, type="appointment.meeting.updated",
                 occurred_at=n, appointment_id=f"appt_{n}", appointment_status="scheduled",
                 start_at="2098-12-31T23:00:00Z", end_at="2099-01-01T00:00:00Z",
                 meeting=Meeting(id=mid, status="created", join_url=f"https://j/{mid}"))


def write(db: Path, *numbers: int) -> None:
    with open_store(db) as store:
        _, failures = store.apply([event(n) for n in numbers])
        assert not failures


def log(db: Path, since: int = 0) -> list[dict[str, Any]]:
    with open_store(db, readonly=True) as store:
        return store.changes_since(since)


async def sse(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """Each event's fields (comments as ``comment``), blank-line separated."""
    fields: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def take(events: AsyncIterator[dict[str, str]], upto: int) -> list[dict[str, Any]]:
    """Changes from the stream until seq ``upto`` (bounded wait)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        async for fields in events:
            if fields.get("event") == "change":
                change = orjson.loads(fields["data"])
                assert int(fields["id"]) == change["seq"]
                got.append(change)
                if change["seq"] >= upto:
                    return got
    raise AssertionError("the stream ended")


async def test_pages_follow_the_log(tmp_path: Path, redis_server: RedisServer) -> None:
    db = tmp_path / "mirror.db"
    write(db, 1, 2, 3)
    settings = savvycal_settings(db_path=str(db), redis_url=redis_server.url, read_token=TOKEN)
    with serve_in_background(create_app(settings), lifespan="on") as root:
        async with httpx.AsyncClient(base_url=root, timeout=5) as http:
            assert (await http.get("/v1/changes")).status_code == 401
            assert (await http.get("/v1/changes?limit=0", headers=AUTH)).status_code == 400
            # schemathesis found it: an empty limit was read as the default
            assert (await http.get("/v1/changes?limit=", headers=AUTH)).status_code == 400
            assert (await http.get("/v1/changes?since=-1", headers=AUTH)).status_code == 400
            seen: list[dict[str, Any]] = []
            cursor = 0
            while True:
                page = (await http.get(f"/v1/changes?since={cursor}&limit=2",
                                       headers=AUTH)).json()
                if not page["changes"]:
                    assert page["next"] == cursor
                    break
                seen += page["changes"]
                cursor = page["next"]
    assert seen == log(db)
    assert {c["entity"] for c in seen} == {"appointment", "meeting"}
    assert set(seen[0]) == {"seq", "entity", "entity_id", "appointment_id", "provider",
                            "changed_at"}


async def test_stream_sends_backlog_then_live_and_resumes_exactly(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    db = tmp_path / "mirror.db"
    write(db, 1, 2)
    settings = savvycal_settings(db_path=str(db), redis_url=redis_server.url, read_token=TOKEN)
    with serve_in_background(create_app(settings), lifespan="on") as root:
        async with httpx.AsyncClient(base_url=root, timeout=5) as http:
            assert (await http.get("/v1/changes/stream")).status_code == 401
            bad = await http.get("/v1/changes/stream", headers={**AUTH, "last-event-id": "x"})
            assert bad.status_code == 400

            async with http.stream("GET", "/v1/changes/stream", headers=AUTH) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = sse(response.aiter_lines())
                backlog = await take(events, log(db)[-1]["seq"])
                assert backlog == log(db)
                write(db, 3, 4)  # committed while the client listens
                live = await take(events, log(db)[-1]["seq"])
                assert live == log(db, backlog[-1]["seq"])
            last = live[-1]["seq"]

            write(db, 5, 6, 7)  # missed while disconnected
            missed = log(db, last)
            resume = {**AUTH, "last-event-id": str(last)}
            async with http.stream("GET", "/v1/changes/stream?since=0",
                                   headers=resume) as response:
                got = await take(sse(response.aiter_lines()), missed[-1]["seq"])
            assert got == missed  # exactly those: none again, none lost
        started = time.monotonic()
    # both streams ended with their clients: shutdown waited on no open response
    assert time.monotonic() - started < 1.5


async def test_heartbeats_and_stop_end_the_stream(tmp_path: Path) -> None:
    db = tmp_path / "mirror.db"
    write(db, 1)
    settings = savvycal_settings(db_path=str(db), read_token=TOKEN)
    mirror = ReadOnlyMirror(str(db))
    feed = ChangeFeed(settings, mirror, poll_seconds=0.05, heartbeat_seconds=0.2)
    try:
        with serve_in_background(Starlette(routes=feed.routes())) as root:
            async with httpx.AsyncClient(base_url=root, timeout=5) as http, http.stream(
                    "GET", "/v1/changes/stream", headers=AUTH) as response:
                events = sse(response.aiter_lines())
                await take(events, log(db)[-1]["seq"])
                async with asyncio.timeout(5):
                    async for fields in events:
                        if fields.get("comment") == "heartbeat":
                            break
                feed.stop()
                async with asyncio.timeout(2):  # the response completes: a clean end
                    rest = [fields async for fields in events]
                assert all("comment" in fields for fields in rest)
            async with httpx.AsyncClient(base_url=root, timeout=5) as http:
                refused = await http.get("/v1/changes/stream", headers=AUTH)
                assert refused.status_code == 503
                assert refused.headers["retry-after"]
    finally:
        mirror.close()
