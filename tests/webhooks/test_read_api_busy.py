"""A read that meets a locked mirror waits on its own thread, never on the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from meetsync.events import Event, Meeting
from meetsync.store import open_store
from meetsync.webhooks.read_api import ReadOnlyMirror


async def test_locked_mirror_read_waits_off_the_loop_then_answers(tmp_path: Path) -> None:
    db = tmp_path / "mirror.db"
    store = open_store(db)
    store.apply([Event(id="evt_1", provider="savvycal", type="t", occurred_at=1,
                       appointment_id="appt_1", meeting=Meeting(id="amtg_1", status="created"))])
    store.close()
    # An exclusive lock shuts out WAL readers too (it needs the file to itself to be taken).
    mirror = ReadOnlyMirror(str(db))
    locked, release = threading.Event(), threading.Event()

    def hold_exclusive_lock() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(5)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_exclusive_lock)
    holder.start()
    assert locked.wait(5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    asyncio.get_running_loop().call_later(0.3, release.set)
    started = time.monotonic()
    found = await mirror.read(lambda s: s.current_meeting("appt_1"))
    waited = time.monotonic() - started
    mirror.close()
    ticking.cancel()
    holder.join()
    assert found is not None and found["id"] == "amtg_1"
    assert waited >= 0.25, "the read should have waited for the lock"
    assert ticks >= 15, "the event loop stalled while the read waited"
