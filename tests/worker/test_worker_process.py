"""`meetsync worker` outlives a Redis outage, keeps applying after it, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from meetsync.events import Event, Meeting
from meetsync.redis_server import RedisServer
from store import open_store
from worker.queue import publish


def snapshot(eid: str, at: int) -> Event:
    return Event(id=eid, provider="savvycal", type="appointment.meeting.updated",
                 occurred_at=at, appointment_id="appt_1", appointment_status="scheduled",
                 meeting=Meeting(id="amtg_1", status="created"))


async def wait_applied(db: Path, event_id: str, patience: float = 20) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if db.exists():
            store = open_store(db, readonly=True)
            try:
                found = store.conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,))
                if found.fetchone():
                    return
            finally:
                store.close()
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id} never reached the mirror")


async def test_worker_survives_redis_restart_and_stops_cleanly(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=True).start()
    db = tmp_path / "mirror.db"
    env = {**os.environ, "REDIS_URL": server.url, "MEETSYNC_DB": str(db), "LOG_LEVEL": "WARNING"}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "meetsync.cli", "worker"], env=env,
                              stdout=log, stderr=log)
    try:
        client = aioredis.Redis.from_url(server.url)
        await publish(client, snapshot("evt_before", 1))
        await wait_applied(db, "evt_before")
        await client.aclose()

        server.stop()
        await asyncio.sleep(2)  # long enough for the worker to notice the outage
        server.start()

        client = aioredis.Redis.from_url(server.url)
        await publish(client, snapshot("evt_after", 2))
        await wait_applied(db, "evt_after", patience=40)
        await client.aclose()
        assert worker.poll() is None, "the worker process exited"

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        server.stop()
        log.close()
