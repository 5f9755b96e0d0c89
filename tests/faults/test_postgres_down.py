"""A worker whose PostgreSQL is down waits for it, at start-up as when running: it never exits,
and applies what was queued meanwhile once the server is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meetsync.dev.pg_server import PostgresServer
from meetsync.dev.redis_server import RedisServer, free_port
from tests.faults.conftest import (
    API_TOKEN,
    NATIVE_SECRET,
    READ_TOKEN,
    Processes,
    applied_ids,
    events_of,
    eventually,
    publish_all,
    queue_settled,
    recent_sim,
    stack_env,
)
from tests.helpers.savvycal import savvycal_settings


async def test_a_worker_waits_for_its_postgresql_and_rides_out_a_restart(
    own_redis: RedisServer, tmp_path: Path, processes: Processes, client_of: object
) -> None:
    sim = recent_sim(31)
    events = events_of(sim.play(100))
    half = len(events) // 2
    server = PostgresServer(tmp_path, port=free_port())
    url = server.database_url("mirror")
    settings = savvycal_settings(db_path=url, redis_url=own_redis.url,
                                 savvycal_webhook_secrets=(NATIVE_SECRET,),
                                 savvycal_api_token=API_TOKEN, read_token=READ_TOKEN,
                                 savvycal_api_url="http://127.0.0.1:9/v1")
    redis = client_of(own_redis)  # type: ignore[operator]
    worker = processes.spawn("worker", stack_env(settings), "worker")
    try:
        async def waiting_or_gone() -> bool:
            return worker.poll() is not None or "worker_store_unavailable" in processes.log(
                "worker")

        await eventually(waiting_or_gone)  # nothing listens on the port yet
        await asyncio.sleep(1.5)
        assert worker.poll() is None, processes.log("worker")[-3000:]

        await asyncio.to_thread(server.start)
        server.create_database("mirror")
        await publish_all(redis, events[:half])

        async def first_half_applied() -> bool:
            return await queue_settled(redis) and len(applied_ids(url)) == half  # type: ignore[arg-type]

        await eventually(first_half_applied, patience=40)

        await asyncio.to_thread(server.stop)
        await publish_all(redis, events[half:])
        await asyncio.sleep(1.5)  # the applier meets the dead connection, backs off
        await asyncio.to_thread(server.start)

        async def all_applied() -> bool:
            return await queue_settled(redis) and len(applied_ids(url)) == len(events)  # type: ignore[arg-type]

        await eventually(all_applied, patience=40)
        assert worker.poll() is None, processes.log("worker")[-3000:]
        assert "Traceback" not in processes.log("worker")
    finally:
        processes.stop_all()
        server.remove()
