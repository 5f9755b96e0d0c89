"""Two accounts of one provider, end to end: signed deliveries over real HTTP to the receiver
(uvicorn on a socket), the real Redis stream, the applier draining into the mirror (SQLite and
PostgreSQL). Each event records the account whose secret verified it; an appointment belongs to
the account it was first received under, and another account's delivery for it (to the bare path
or to its own) is counted as an account conflict and changes nothing (docs/configuration.md,
"Precedence and rules")."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
import uvicorn
from arq.connections import ArqRedis
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from meetsync.dev.redis_server import RedisServer
from meetsync.providers.keys import settings_from_env
from meetsync.providers.savvycal.simulator.signing import sign
from meetsync.providers.zoom.simulator.signing import zoom_headers
from meetsync.queue import STATS, LaneKeys
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, Round, StoreThread
from meetsync.worker.main import shutdown, startup
from tests.sql import query

SECRETS = {"acme": "acme-savvycal-secret-0123456789", "beta": "beta-savvycal-secret-9876543210"}
TOKENS = {"acme": "acme-zoom-secret-token-0123", "beta": "beta-zoom-secret-token-9876"}
APPT = "appt_000000000001"
MEETING = 85746065432


def settings_for(tmp_path: Path, db: Path | str) -> Settings:
    """Two SavvyCal and two Zoom accounts, as an operator configures them (MEETSYNC_CONFIG)."""
    config = tmp_path / "meetsync.toml"
    config.write_text("".join(
        f'[providers.savvycal.accounts.{name}]\nwebhook_secret = "{SECRETS[name]}"\n'
        f'[providers.zoom.accounts.{name}]\nwebhook_secret_token = "{TOKENS[name]}"\n'
        for name in ("acme", "beta")))
    return settings_from_env({"MEETSYNC_CONFIG": str(config), "MEETSYNC_DB": str(db),
                              "MEETSYNC_CALLER_DIR": str(tmp_path)})


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[str]:
    """``app`` on a real socket (uvicorn, this event loop); yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):  # uvicorn sets ``started`` once it listens
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def drain(redis: aioredis.Redis, db: Path | str) -> Round:
    applier = Applier(redis, StoreThread(lambda: open_store(db)), batch_size=16)
    try:
        return await applier.drain()
    finally:
        applier.store.close()


def conflicts_counted(provider: str) -> float:
    return REGISTRY.get_sample_value(
        "meetsync_account_conflicts_total", {"provider": provider}) or 0.0


def savvycal_body(event_id: str, type_: str, at: str, status: str, join_url: str) -> bytes:
    meeting = {"id": f"amtg_{event_id}", "object": "appointment_meeting", "status": "created",
               "conferencing_provider": "zoom_admin", "external_meeting_id": None,
               "join_url": join_url, "host_url": None, "password": None, "error_message": None}
    appointment = {"id": APPT, "object": "appointment", "status": status,
                   "start_at": {"utc": "2099-03-01T15:00:00Z"},
                   "end_at": {"utc": "2099-03-01T15:30:00Z"}, "meeting": meeting}
    return orjson.dumps({"id": event_id, "created_at": at,
                         "data": {"type": type_, "object": appointment}})


async def post_savvycal(
    client: httpx.AsyncClient, path: str, signer: str, body: bytes, event_id: str
) -> None:
    headers = sign("native", body, SECRETS[signer], event_id=event_id, webhook_id="wh_iso")
    response = await client.post(path, content=body,
                                 headers={**headers, "content-type": "application/json"})
    assert response.status_code == 202, response.text


async def test_savvycal_accounts_are_isolated(
    redis: aioredis.Redis, tmp_path: Path, db_path: Path | str
) -> None:
    open_store(db_path).close()
    counted = conflicts_counted("savvycal")
    async with served(create_app(settings_for(tmp_path, db_path), redis=redis)) as url, \
            httpx.AsyncClient(base_url=url) as client:
        # acme's appointment, delivered to the bare path and signed with acme's secret.
        await post_savvycal(client, "/webhooks/savvycal", "acme", savvycal_body(
            "evt_acme_1", "appointment.created", "2026-01-01T10:00:00Z", "scheduled",
            "https://zoom.us/j/acme"), "evt_acme_1")
        assert (await drain(redis, db_path)).result.applied == 1
        # beta, with its own valid secret: a newer cancel and another join_url, to the bare
        # path and to beta's own path.
        for n, path in enumerate(("/webhooks/savvycal", "/webhooks/savvycal/beta")):
            event_id = f"evt_beta_{n}"
            await post_savvycal(client, path, "beta", savvycal_body(
                event_id, "appointment.canceled", f"2026-01-01T11:0{n}:00Z", "canceled",
                "https://zoom.us/j/beta"), event_id)
        # acme's own later update still lands (to acme's path).
        await post_savvycal(client, "/webhooks/savvycal/acme", "acme", savvycal_body(
            "evt_acme_2", "appointment.rescheduled", "2026-01-01T12:00:00Z", "scheduled",
            "https://zoom.us/j/acme2"), "evt_acme_2")
        drained = await drain(redis, db_path)

    assert drained.result.applied == 1
    assert [(c.provider, c.appointment_id, c.owner, c.sender)
            for c in drained.result.account_conflicts] == [("savvycal", APPT, "acme", "beta")] * 2
    assert query(db_path, "SELECT id, account, outcome FROM events ORDER BY id") == [
        ("evt_acme_1", "acme", "applied"), ("evt_acme_2", "acme", "applied"),
        ("evt_beta_0", "beta", "account_conflict"), ("evt_beta_1", "beta", "account_conflict")]
    assert query(db_path, "SELECT id, account, status FROM appointments") == [
        (APPT, "acme", "scheduled")]
    assert query(db_path, "SELECT join_url FROM meetings m JOIN appointments a"
                          " ON a.provider = m.provider AND a.meeting_id = m.id") == [
        ("https://zoom.us/j/acme2",)]
    assert query(db_path, "SELECT count(*) FROM meetings WHERE join_url LIKE '%beta%'") == [(0,)]
    assert int(await redis.hget(STATS, "account_conflicts") or 0) == 2
    assert conflicts_counted("savvycal") - counted == 2


def zoom_body(event: str, ts: int, join_url: str | None = None) -> bytes:
    obj: dict[str, Any] = {"id": MEETING, "uuid": "u==", "host_id": "h", "topic": "t",
                           "type": 2, "start_time": "2099-03-01T16:00:00Z", "duration": 30,
                           "timezone": "UTC"}
    if join_url:
        obj["join_url"] = join_url
    return orjson.dumps({"event": event, "event_ts": ts,
                         "payload": {"account_id": "acct", "operator": "o@x", "object": obj}})


async def post_zoom(client: httpx.AsyncClient, path: str, signer: str, body: bytes) -> None:
    response = await client.post(path, content=body, headers=zoom_headers(body, TOKENS[signer]))
    assert response.status_code == 202, response.text


async def test_zoom_accounts_are_isolated(
    redis: aioredis.Redis, tmp_path: Path, db_path: Path | str
) -> None:
    open_store(db_path).close()
    counted = conflicts_counted("zoom")
    ts = 1_767_261_600_000
    async with served(create_app(settings_for(tmp_path, db_path), redis=redis)) as url, \
            httpx.AsyncClient(base_url=url) as client:
        await post_zoom(client, "/webhooks/zoom", "acme",
                        zoom_body("meeting.created", ts, "https://zoom.us/j/acme"))
        assert (await drain(redis, db_path)).result.applied == 1
        # beta's secret token: a later meeting.created with another join_url (bare path) and a
        # deletion (beta's own path).
        await post_zoom(client, "/webhooks/zoom", "beta",
                        zoom_body("meeting.created", ts + 1000, "https://zoom.us/j/beta"))
        await post_zoom(client, "/webhooks/zoom/beta", "beta",
                        zoom_body("meeting.deleted", ts + 2000))
        drained = await drain(redis, db_path)

    assert drained.result.applied == 0
    assert [(c.owner, c.sender) for c in drained.result.account_conflicts] == [
        ("acme", "beta")] * 2
    assert query(db_path, "SELECT type, account, outcome FROM events ORDER BY occurred_at") == [
        ("meeting.created", "acme", "applied"), ("meeting.created", "beta", "account_conflict"),
        ("meeting.deleted", "beta", "account_conflict")]
    assert query(db_path, "SELECT id, account, status, meeting_id FROM appointments") == [
        (str(MEETING), "acme", "scheduled", str(MEETING))]
    assert query(db_path, "SELECT join_url FROM meetings") == [("https://zoom.us/j/acme",)]
    assert int(await redis.hget(STATS, "account_conflicts") or 0) == 2
    assert conflicts_counted("zoom") - counted == 2


async def test_a_tie_is_refetched_from_the_account_that_received_it(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Two acme deliveries at the same instant tie: the refetch is queued for acme (it was
    logged for ``default``, which has no API, and never ran)."""
    db = tmp_path / "mirror.db"
    config = tmp_path / "meetsync.toml"
    config.write_text("".join(
        f'[providers.savvycal.accounts.{name}]\nwebhook_secret = "{SECRETS[name]}"\n'
        f'api_token = "{name}-token"\napi_url = "http://127.0.0.1:9/v1"\n'
        for name in ("acme", "beta")))
    settings = settings_from_env({"MEETSYNC_CONFIG": str(config), "MEETSYNC_DB": str(db),
                                  "REDIS_URL": redis_server.url,
                                  "MEETSYNC_CALLER_DIR": str(tmp_path)})
    arq = ArqRedis.from_url(redis_server.url)
    ctx: dict[str, Any] = {"settings": settings, "redis": arq}
    await startup(ctx)
    try:
        async with served(create_app(settings, redis=redis)) as url, \
                httpx.AsyncClient(base_url=url) as client:
            for n in (1, 2):
                event_id = f"evt_acme_{n}"
                await post_savvycal(client, "/webhooks/savvycal", "acme", savvycal_body(
                    event_id, "appointment.meeting.updated", "2026-01-01T10:00:00Z",
                    "scheduled", f"https://zoom.us/j/acme{n}"), event_id)
        # Queued in acme's refetch lane (its API is unreachable here: back in line, retried).
        acme, default = LaneKeys.of("savvycal", "acme"), LaneKeys.of("savvycal", "default")

        async def queued(lane: LaneKeys) -> bool:
            return (await redis.zscore(lane.waiting, APPT) is not None
                    or await redis.zscore(lane.in_flight, APPT) is not None)

        for _ in range(250):
            if await queued(acme):
                break
            await asyncio.sleep(0.02)
        assert await queued(acme)
        assert not await queued(default)
    finally:
        await shutdown(ctx)
        await arq.aclose()
