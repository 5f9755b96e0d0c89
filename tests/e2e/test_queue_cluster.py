"""The event stream on a real three-node Redis Cluster (arq's Redis a single server beside it):
partitions land on several nodes, appliers and the worker process drain them all into the
mirror, nothing lost; the operator's figures and `meetsync stats` sum every partition."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import redis.asyncio as aioredis
import redis.cluster
from redis.asyncio.cluster import RedisCluster

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.providers.savvycal.simulator.signing import sign
from meetsync.queue import (
    FIELD,
    STATS,
    Backlog,
    backlog,
    partition_of,
    stream_key,
    stream_of,
    streams,
)
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from tests.cluster import LocalCluster
from tests.faults.conftest import events_of, recent_sim
from tests.helpers.savvycal import savvycal_settings
from tests.store.test_order_property import state

NATIVE = "cluster-native-secret"
PARTITIONS = 8


async def held_by_node(redis_cluster: LocalCluster) -> list[int]:
    """Entries on the event streams of each node, asked of the node itself."""
    held = []
    for port in redis_cluster.ports:
        node = aioredis.Redis(port=port)
        keys = [key async for key in node.scan_iter(match="meetsync:events*")]
        held.append(sum([await node.xlen(key) for key in keys]))
        await node.aclose()
    return held


async def queued_events(cluster: RedisCluster) -> dict[str, list[Event]]:
    """What waits on each stream, by key."""
    return {key: [Event.from_json(fields[FIELD]) for _, fields in await cluster.xrange(key)]
            for key in streams(PARTITIONS)}


async def test_signed_deliveries_spread_over_the_nodes_and_drain_with_nothing_lost(
    redis: aioredis.Redis, cluster: RedisCluster, redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    db = tmp_path / "mirror.db"
    open_store(db).close()  # for /readyz
    settings = savvycal_settings(db_path=str(db), savvycal_webhook_secrets=(NATIVE,),
                                 read_token="t", queue_partitions=PARTITIONS)
    sim = recent_sim(11)
    deliveries = sim.play(40)
    app = create_app(settings, redis=redis, queue=cluster)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        # Concurrent requests: the receiver's pipelines carry events for several nodes each.
        answers = await asyncio.gather(*(
            client.post("/webhooks/savvycal", content=d.body, headers={
                **sign("native", d.body, NATIVE, event_id=d.event_id, webhook_id="wh_c"),
                "content-type": "application/json"})
            for d in deliveries))
        assert {a.status_code for a in answers} == {202}
        assert (await client.get("/readyz")).json() == {"status": "ok"}

        by_key = await queued_events(cluster)
        queued = [event for events in by_key.values() for event in events]
        assert len(queued) == len(deliveries)
        for key, events in by_key.items():
            assert all(key == stream_key(partition_of(e.provider, e.appointment_id, PARTITIONS),
                                         PARTITIONS) for e in events)
        held = await held_by_node(redis_cluster)
        assert sum(held) == len(deliveries)
        assert sum(1 for n in held if n) >= 2, f"every partition on one node: {held}"
        metrics = (await client.get("/metrics")).text
        assert f"meetsync_queue_depth {float(len(deliveries))}" in metrics

        applier = Applier(cluster, StoreThread(lambda: open_store(db)), partitions=PARTITIONS,
                          batch_size=8)
        drained = await applier.drain()
        applier.store.close()
        assert drained.result.applied == len(deliveries)
        assert await backlog(cluster, PARTITIONS) == Backlog(0, 0, None)
        assert int(await cluster.hget(STATS, "applied")) == len(deliveries)  # type: ignore[misc,arg-type]
        assert "meetsync_queue_depth 0.0" in (await client.get("/metrics")).text

    order = {d.event_id: n for n, d in enumerate(deliveries)}
    with open_store(tmp_path / "in_order.db") as store:
        for event in sorted(queued, key=lambda e: order[e.id]):
            store.apply([event])
    assert state(db) == state(tmp_path / "in_order.db")


def wait_applied(db: Path, count: int, patience: float = 30) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                if conn.execute("SELECT count(*) FROM events").fetchone()[0] == count:
                    return
        except sqlite3.OperationalError:
            pass  # the worker has not created the mirror yet
        time.sleep(0.1)
    raise AssertionError(f"{count} events never reached the mirror")


def test_the_worker_process_serves_every_partition_on_the_cluster(
    redis_server: RedisServer, redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    """`meetsync worker` with MEETSYNC_QUEUE_URL=redis+cluster://: blocking reads per
    partition, on whichever node holds it; arq stays on REDIS_URL. `meetsync stats` counts
    the backlog over every partition."""
    events = events_of(recent_sim(12).play(30))
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    client.flushall()
    for event in events:
        client.xadd(stream_of(event, PARTITIONS), {FIELD: event.to_json()})
    client.close()
    db = tmp_path / "mirror.db"
    env = {**os.environ, "REDIS_URL": redis_server.url, "MEETSYNC_QUEUE_URL": redis_cluster.url,
           "MEETSYNC_QUEUE_PARTITIONS": str(PARTITIONS), "MEETSYNC_DB": str(db),
           "LOG_LEVEL": "WARNING"}

    def queued() -> int:
        stats = subprocess.run([sys.executable, "-m", "meetsync.cli", "stats"], env=env,
                               capture_output=True, text=True, timeout=60, check=False)
        assert stats.returncode == 0, stats.stderr
        return int(json.loads(stats.stdout)["queued"])

    assert queued() == len(events)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "meetsync.cli", "worker"], env=env,
                                  stdout=log, stderr=log)
        try:
            wait_applied(db, len(events))
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=20)
            assert code == 0, (tmp_path / "worker.log").read_text()[-4000:]
        finally:
            if worker.poll() is None:
                worker.kill()
    assert queued() == 0  # applied, acknowledged and deleted
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
