"""SQLite held by another writer: bounded waits and backoff, then success; a long reader blocks
nothing; no event is lost either way."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from meetsync.dev.redis_server import RedisServer
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread
from tests.faults.conftest import (
    applied_ids,
    events_of,
    eventually,
    publish_all,
    queue_settled,
    recent_sim,
)
from tests.sql import writes_held

pytestmark = pytest.mark.sqlite_only  # SQLite's own locks (PostgreSQL's: the soak restarts it)

BUSY_TIMEOUT = 0.1
HELD_FOR = 1.2


async def test_a_writer_holding_the_lock_past_the_busy_timeout_delays_but_loses_nothing(
    own_redis: RedisServer, db_path: Path, client_of: Callable[[RedisServer], aioredis.Redis]
) -> None:
    events = events_of(recent_sim(51).play(40))
    open_store(db_path).close()
    redis = client_of(own_redis)
    applier = Applier(
        redis, StoreThread(lambda: open_store(db_path, busy_timeout=BUSY_TIMEOUT)),
        busy_backoff=0.05,
    )
    blocker = contextlib.ExitStack()  # another writer, until closed
    blocker.enter_context(writes_held(db_path))
    await publish_all(redis, events)
    running = asyncio.create_task(applier.run(block_ms=50))
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(HELD_FOR)
        assert applied_ids(db_path) == set()
        waits_while_held = applier.busy_waits
        blocker.close()

        async def settled() -> bool:
            return await queue_settled(redis)

        await eventually(settled, patience=10)
    finally:
        ticking.cancel()
        blocker.close()
        applier.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=5)
        applier.store.close()
    # Backed off (0.05 s doubling) rather than hammering the lock; the loop never stalled.
    assert 2 <= waits_while_held <= 8
    assert max(gaps) < 0.1
    assert applied_ids(db_path) == {e.id for e in events}


async def test_a_long_reader_does_not_block_the_applier(
    own_redis: RedisServer, db_path: Path, client_of: Callable[[RedisServer], aioredis.Redis]
) -> None:
    events = events_of(recent_sim(52).play(40))
    half = len(events) // 2
    redis = client_of(own_redis)
    applier = Applier(
        redis, StoreThread(lambda: open_store(db_path, busy_timeout=BUSY_TIMEOUT)),
        busy_backoff=0.05,
    )
    await applier.ensure_group()
    await publish_all(redis, events[:half])
    await applier.drain()
    reader = open_store(db_path, readonly=True)
    # SQLite's reader keeps its snapshot for the transaction; PostgreSQL's, when asked to.
    reader.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ"
                        if reader.dialect.name == "postgresql" else "BEGIN")
    seen = reader.conn.execute("SELECT count(*) FROM events").fetchone()
    try:
        await publish_all(redis, events[half:])
        started = time.monotonic()
        await applier.drain()
        # WAL: the writer never waits for a reader, and the reader keeps its snapshot.
        assert time.monotonic() - started < BUSY_TIMEOUT * 5
        assert applier.busy_waits == 0
        assert reader.conn.execute("SELECT count(*) FROM events").fetchone() == seen
    finally:
        reader.conn.execute("COMMIT")
        applier.store.close()
    assert reader.conn.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    reader.close()
    assert applied_ids(db_path) == {e.id for e in events}
