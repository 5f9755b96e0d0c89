"""Abuse: a replayed native delivery changes nothing; no read route answers without the token,
which is compared in constant time."""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.routing import Route

from meetsync.providers.savvycal.simulator.signing import native_headers
from meetsync.queue import STATS
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from tests.faults.conftest import NATIVE_SECRET, READ_TOKEN, events_of, recent_sim
from tests.helpers.savvycal import savvycal_settings
from tests.sql import query

# /metrics is open unless MEETSYNC_METRICS_TOKEN is set (tests/webhooks/test_metrics.py);
# /status/login takes the token in a form post (tests/webhooks/test_status_page.py).
UNGUARDED = {"/webhooks/{provider}", "/healthz", "/readyz", "/metrics", "/status/login",
             "/openapi.json"}
FOUND_WITHOUT_ID = {"/status"}  # answers 200 with the token: it names no appointment


def mirror_state(db_path: Path) -> tuple[list[Any], ...]:
    return tuple(
        query(db_path, f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608
        for table in ("appointments", "meetings", "changes", "events")
    )


async def test_a_replayed_native_delivery_is_acknowledged_and_changes_nothing(
    redis: aioredis.Redis, db_path: Path
) -> None:
    sim = recent_sim(71)
    deliveries = sim.play(5)
    settings = savvycal_settings(db_path=str(db_path), savvycal_webhook_secrets=(NATIVE_SECRET,),
                        read_token=READ_TOKEN)
    app = create_app(settings, redis=redis)
    applier = Applier(redis, StoreThread(lambda: open_store(db_path)))
    await applier.ensure_group()
    target = deliveries[-1]
    # Captured off the wire: the same bytes, the same signature (native signs no timestamp).
    captured = (target.body, native_headers(target.body, NATIVE_SECRET, "wh_abuse"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://receiver") as client:
        for delivery in deliveries:
            headers = native_headers(delivery.body, NATIVE_SECRET, "wh_abuse")
            response = await client.post("/webhooks/savvycal", content=delivery.body,
                                         headers=headers)
            assert response.status_code == 202
        await applier.drain()
        before = mirror_state(db_path)
        for _ in range(3):
            body, headers = captured
            replayed = await client.post("/webhooks/savvycal", content=body, headers=headers)
            assert replayed.status_code == 202
        drained = await applier.drain()
    applier.store.close()
    assert (drained.result.applied, drained.result.duplicates) == (0, 3)
    assert mirror_state(db_path) == before
    assert int((await redis.hget(STATS, "duplicates")) or 0) == 3
    assert len(events_of(deliveries)) == len(before[3])


def guarded_paths(settings: Settings, redis: aioredis.Redis) -> list[str]:
    """Every GET route of the real app outside the webhook and probes, ids filled in."""
    app = create_app(settings, redis=redis)
    paths = [
        re.sub(r"\{[^}]+\}", "appt_abuseabuse1", route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path not in UNGUARDED
        and not route.path.startswith("/webhooks/")
    ]
    assert len(paths) >= 2, "the read API's routes are found"
    return paths


BAD_AUTH = [
    {},
    {"authorization": ""},
    {"authorization": "Bearer"},
    {"authorization": "Bearer "},
    {"authorization": f"Basic {READ_TOKEN}"},
    {"authorization": READ_TOKEN},
    {"authorization": f"Bearer {READ_TOKEN[:-1]}"},
    {"authorization": f"Bearer {READ_TOKEN}x"},
    {"authorization": f"Bearer {READ_TOKEN.upper()}"},
    {"x-api-key": READ_TOKEN},
]


@pytest.mark.parametrize("headers", BAD_AUTH)
async def test_no_read_route_answers_without_the_token(
    redis: aioredis.Redis, db_path: Path, headers: dict[str, str]
) -> None:
    open_store(db_path).close()
    settings = savvycal_settings(db_path=str(db_path), savvycal_webhook_secrets=(NATIVE_SECRET,),
                        read_token=READ_TOKEN)
    app = create_app(settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:
        for path in guarded_paths(settings, redis):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
            if path.startswith("/v1/changes"):
                continue  # a feed answers 200 (the stream forever): tests/webhooks/test_changes
            good = await client.get(path, headers={"authorization": f"Bearer {READ_TOKEN}"})
            assert good.status_code == (200 if path in FOUND_WITHOUT_ID else 404), path


async def test_without_a_configured_token_nothing_is_readable(
    redis: aioredis.Redis, db_path: Path
) -> None:
    open_store(db_path).close()
    settings = savvycal_settings(db_path=str(db_path), savvycal_webhook_secrets=(NATIVE_SECRET,))
    app = create_app(settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:
        for path in guarded_paths(settings, redis):
            for auth in ("Bearer ", "Bearer None", "Bearer null"):
                response = await client.get(path, headers={"authorization": auth})
                assert response.status_code == 401, (path, auth)


async def test_the_token_is_compared_in_constant_time(
    redis: aioredis.Redis, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(db_path).close()
    settings = savvycal_settings(db_path=str(db_path), savvycal_webhook_secrets=(NATIVE_SECRET,),
                        read_token=READ_TOKEN)
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    app = create_app(settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as client:
        for path in guarded_paths(settings, redis):
            compared.clear()
            await client.get(path, headers={"authorization": "Bearer guess"})
            assert compared == [(b"guess", READ_TOKEN.encode())], path
