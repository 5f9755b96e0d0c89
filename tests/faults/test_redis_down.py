"""Redis down at receipt: 503 + Retry-After, then accepted again; every 202 reaches the mirror."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from meetsync.dev.redis_server import RedisServer
from meetsync.providers.savvycal.simulator import Delivery
from meetsync.providers.savvycal.simulator.signing import native_headers
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from tests.faults.conftest import (
    NATIVE_SECRET,
    READ_TOKEN,
    applied_ids,
    eventually,
    recent_sim,
)
from tests.helpers.savvycal import savvycal_settings

URL = "http://receiver/webhooks/savvycal"


async def post(client: httpx.AsyncClient, delivery: Delivery) -> httpx.Response:
    headers = native_headers(delivery.body, NATIVE_SECRET, "wh_faults")
    return await client.post(URL, content=delivery.body, headers=headers)


async def test_deliveries_get_503_while_redis_is_down_and_every_202_is_applied(
    own_redis: RedisServer, db_path: Path
) -> None:
    sim = recent_sim(11)
    deliveries = sim.play(40)
    third = len(deliveries) // 3
    settings = savvycal_settings(db_path=str(db_path), redis_url=own_redis.url,
                        savvycal_webhook_secrets=(NATIVE_SECRET,), read_token=READ_TOKEN)
    # The receiver's own client, with the fail-fast timeouts the web process uses.
    receiver_redis = aioredis.Redis.from_url(
        own_redis.url, socket_connect_timeout=1, socket_timeout=2
    )
    worker_redis = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=1)
    applier = Applier(worker_redis, StoreThread(lambda: open_store(db_path)),
                      busy_backoff=0.05, claim_idle_ms=1000)
    running = asyncio.create_task(applier.run(block_ms=100))
    accepted: list[str] = []
    transport = httpx.ASGITransport(app=create_app(settings, redis=receiver_redis))
    try:
        async with httpx.AsyncClient(transport=transport) as client:
            for delivery in deliveries[:third]:
                response = await post(client, delivery)
                assert response.status_code == 202
                accepted.append(delivery.event_id)

            own_redis.stop()
            refused = deliveries[third : 2 * third]
            for delivery in refused:
                response = await post(client, delivery)
                assert response.status_code == 503
                assert response.headers["retry-after"] == "5"
            await asyncio.sleep(0.3)  # the applier meets the outage too, and must outlive it
            assert not running.done()

            own_redis.start()
            # The sender retries what was refused, then carries on.
            for delivery in [*refused, *deliveries[2 * third :]]:
                for _attempt in range(5):
                    response = await post(client, delivery)
                    if response.status_code == 202:
                        accepted.append(delivery.event_id)
                        break
                    assert response.status_code == 503
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("Redis is back but deliveries are still refused")

        async def all_applied() -> bool:
            return set(accepted) <= applied_ids(db_path)

        await eventually(all_applied)
        assert len(accepted) == len(deliveries)
        assert not running.done()
    finally:
        applier.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=5)
        applier.store.close()
        await receiver_redis.aclose()
        await worker_redis.aclose()
