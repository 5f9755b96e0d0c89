"""`meetsync worker` outlives a Redis outage, keeps applying after it, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import redis

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event, Meeting
from meetsync.queue import EVENT_STREAM, FIELD


def publish(url: str, event_id: str, at: int) -> None:
    event = Event(id=event_id, provider="savvycal", type="appointment.meeting.updated",
                  occurred_at=at, appointment_id="appt_1", appointment_status="scheduled",
                  meeting=Meeting(id="amtg_1", status="created"))
    client = redis.Redis.from_url(url)
    client.xadd(EVENT_STREAM, {FIELD: event.to_json()})
    client.close()


def wait_applied(db: Path, event_id: str, patience: float = 20) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                if conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone():
                    return
        except sqlite3.OperationalError:
            pass  # the worker has not created the mirror yet
        time.sleep(0.1)
    raise AssertionError(f"{event_id} never reached the mirror")


def test_worker_survives_redis_restart_and_stops_cleanly(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=True).start()
    db = tmp_path / "mirror.db"
    env = {**os.environ, "REDIS_URL": server.url, "MEETSYNC_DB": str(db), "LOG_LEVEL": "WARNING"}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "meetsync.cli", "worker"], env=env,
                                  stdout=log, stderr=log)
        try:
            publish(server.url, "evt_before", 1)
            wait_applied(db, "evt_before")

            server.stop()
            time.sleep(2)  # long enough for the worker to notice the outage
            server.start()

            publish(server.url, "evt_after", 2)
            wait_applied(db, "evt_after", patience=40)
            assert worker.poll() is None, "the worker process exited"

            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
            server.stop()
