"""`GET /metrics` of the real app: deliveries, queue figures, applied batches and reads move its
figures; no id, credential or secret ever appears in it; a metrics token guards it when set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from meetsync.queue import EVENT_STREAM
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from tests.providers.savvycal.samples import HOST_URL, NATIVE_SECRET, STANDARD_SECRET, Samples

READ_TOKEN = "read-token-for-metrics-tests"
METRICS_TOKEN = "metrics-token-for-tests"
Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Figures:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(figures: Figures, name: str, **labels: str) -> float:
    return figures.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def ops_settings(settings: Settings) -> Settings:
    return replace(settings, read_token=READ_TOKEN)


@pytest.fixture
async def http(ops_settings: Settings, redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ops_settings, redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        yield client


async def scrape(http: httpx.AsyncClient, **headers: str) -> tuple[str, Figures]:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text, parse(response.text)


async def test_deliveries_queue_and_batches_move_the_figures(
    http: httpx.AsyncClient, samples: Samples, redis: aioredis.Redis, db_path: Path
) -> None:
    _, before = await scrape(http)
    for n in range(3):
        body = samples.body(event_id=f"evt_metrics_{n}")
        answer = await http.post("/webhooks/savvycal", content=body,
                                 headers=samples.native_headers(body))
        assert answer.status_code == 202
    body = samples.body(event_id="evt_metrics_forged")
    assert (await http.post("/webhooks/savvycal", content=body,
                            headers=samples.native_headers(body, "wrong"))).status_code == 401
    assert (await http.post("/webhooks/nosuch", content=body)).status_code == 404

    text, after = await scrape(http)
    queued = dict(provider="savvycal", account="default", outcome="queued", code="202")
    refused = dict(provider="savvycal", account="unknown account",
                   outcome="rejected_signature", code="401")
    unknown = dict(provider="unknown", account="", outcome="unknown_provider", code="404")
    deliveries = "meetsync_webhook_deliveries_total"
    assert value(after, deliveries, **queued) - value(before, deliveries, **queued) == 3
    assert value(after, deliveries, **refused) - value(before, deliveries, **refused) == 1
    assert value(after, deliveries, **unknown) - value(before, deliveries, **unknown) == 1
    assert value(after, "meetsync_queue_depth") == await redis.xlen(EVENT_STREAM) == 3
    assert value(after, "meetsync_queue_oldest_age_seconds") >= 0
    assert value(after, "meetsync_scrape_source_up", source="redis") == 1
    assert "nosuch" not in text

    store = StoreThread(lambda: open_store(db_path))
    try:
        await Applier(redis, store).drain()
    finally:
        store.close()
    text, drained = await scrape(http)
    assert value(drained, "meetsync_queue_depth") == 0
    assert value(drained, "meetsync_queue_oldest_age_seconds") == 0
    events = "meetsync_events_total"
    settled = sum(value(drained, events, result=r) - value(before, events, result=r)
                  for r in ("applied", "stale", "duplicate"))
    assert settled == 3
    assert value(drained, events, result="applied") > value(before, events, result="applied")
    batches = "meetsync_apply_batch_size_count"
    assert value(drained, batches) > value(before, batches)
    assert value(drained, "meetsync_apply_batch_duration_seconds_count") > 0
    assert value(drained, "meetsync_scrape_source_up", source="mirror") == 1

    # The read API: the meeting's host link was served (its appointment ended long ago, so the
    # credential is expired and withheld).
    meeting = await http.get("/v1/appointments/appt_a1b2c3d4e5f6/meeting",
                             headers={"authorization": f"Bearer {READ_TOKEN}"})
    assert meeting.status_code == 200 and meeting.json()["host_url"] is None
    _, read = await scrape(http)
    withheld = dict(provider="savvycal", outcome="expired")
    assert (value(read, "meetsync_read_host_url_total", **withheld)
            - value(drained, "meetsync_read_host_url_total", **withheld)) == 1

    # Nothing that names an appointment, a meeting, an event or a credential.
    for secret in ("appt_a1b2c3d4e5f6", "amtg_a1b2c3d4e5f6", "evt_metrics", "82912345678",
                   HOST_URL, "SECRET-TOKEN", "abc123", NATIVE_SECRET, STANDARD_SECRET,
                   READ_TOKEN, "acct_a1b2c3d4e5f6"):
        assert secret not in text, secret


async def test_a_served_host_link_is_counted(
    http: httpx.AsyncClient, samples: Samples, redis: aioredis.Redis, db_path: Path
) -> None:
    future = samples.appointment(
        start_at={"utc": "2099-03-01T15:00:00Z"}, end_at={"utc": "2099-03-01T15:30:00Z"})
    body = samples.body(event_id="evt_future", obj=future)
    assert (await http.post("/webhooks/savvycal", content=body,
                            headers=samples.native_headers(body))).status_code == 202
    store = StoreThread(lambda: open_store(db_path))
    try:
        await Applier(redis, store).drain()
    finally:
        store.close()
    _, before = await scrape(http)
    answer = await http.get("/v1/savvycal/appointments/appt_a1b2c3d4e5f6/meeting",
                            headers={"authorization": f"Bearer {READ_TOKEN}"})
    assert answer.json()["host_url"] == HOST_URL
    text, after = await scrape(http)
    served = dict(provider="savvycal", outcome="served")
    assert (value(after, "meetsync_read_host_url_total", **served)
            - value(before, "meetsync_read_host_url_total", **served)) == 1
    assert HOST_URL not in text and "SECRET-TOKEN" not in text


async def test_a_metrics_token_guards_the_scrape(
    ops_settings: Settings, redis: aioredis.Redis
) -> None:
    app = create_app(replace(ops_settings, metrics_token=METRICS_TOKEN), redis=redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"authorization": f"Bearer {READ_TOKEN}"})
        assert wrong.status_code == 401
        _, figures = await scrape(http, authorization=f"Bearer {METRICS_TOKEN}")
        assert ("meetsync_queue_depth", frozenset()) in figures


async def test_redis_down_is_a_figure_not_an_error(
    ops_settings: Settings, redis: aioredis.Redis
) -> None:
    gone = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    app = create_app(ops_settings, redis=gone)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as http:
            _, figures = await scrape(http)
    finally:
        await gone.aclose()
    assert value(figures, "meetsync_scrape_source_up", source="redis") == 0
    assert ("meetsync_queue_depth", frozenset()) not in figures
