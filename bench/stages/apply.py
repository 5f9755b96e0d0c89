"""Apply: one Applier drains a backlog from the Redis stream into the mirror, against raw
``sqlite3`` ``executemany`` upserts of the same rows (same pragmas).

Ours includes everything the worker does per batch: XREADGROUP, decoding, the inbox (dedupe),
the order guard, the meeting chain, the change-log triggers, XACK + XDEL and the counters.
Both sides write ``BATCH`` events per transaction: the worker's default batch
(``MEETSYNC_BATCH_SIZE``). The backlog holds what the receiver queues: events stamped with
their receipt time (``meetsync.events.received``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from bench import workload
from bench.common import Figure, Options, StageResult
from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event, received
from meetsync.queue import EVENT_STREAM, FIELD
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread

TARGET = 0.30
BATCH = Settings.batch_size  # the worker's default

_RAW_TABLE = """
CREATE TABLE snapshots (
    appointment_id TEXT PRIMARY KEY, status TEXT, start_at TEXT, end_at TEXT, meeting_id TEXT,
    meeting_status TEXT, conferencing_provider TEXT, external_meeting_id TEXT, join_url TEXT,
    host_url TEXT, password TEXT, error_message TEXT, version_at INTEGER, version_event TEXT
)
"""
_RAW_UPSERT = """
INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (appointment_id) DO UPDATE SET
    status = excluded.status, start_at = excluded.start_at, end_at = excluded.end_at,
    meeting_id = excluded.meeting_id, meeting_status = excluded.meeting_status,
    conferencing_provider = excluded.conferencing_provider,
    external_meeting_id = excluded.external_meeting_id, join_url = excluded.join_url,
    host_url = excluded.host_url, password = excluded.password,
    error_message = excluded.error_message, version_at = excluded.version_at,
    version_event = excluded.version_event
"""


def row(event: Event) -> tuple[object, ...]:
    m = event.meeting
    return (
        event.appointment_id, event.appointment_status, event.start_at, event.end_at,
        m and m.id, m and m.status, m and m.conferencing_provider, m and m.external_meeting_id,
        m and m.join_url, m and m.host_url, m and m.password, m and m.error_message,
        event.occurred_at, event.id,
    )


def raw_upsert(path: Path, rows: Sequence[tuple[object, ...]]) -> float:
    """Seconds to upsert ``rows`` with plain sqlite3, ``BATCH`` per transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -16384")  # as store.open_store sets it
    conn.execute(_RAW_TABLE)
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        conn.execute("BEGIN")
        conn.executemany(_RAW_UPSERT, rows[start : start + BATCH])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


async def backlog(client: aioredis.Redis, events: Sequence[Event]) -> None:
    for start in range(0, len(events), 5000):
        async with client.pipeline(transaction=False) as pipe:
            for event in events[start : start + 5000]:
                pipe.xadd(EVENT_STREAM, {FIELD: event.to_json()})
            await pipe.execute()


async def applier_drain(redis_url: str, db_path: Path, events: Sequence[Event]) -> float:
    """Seconds one Applier takes to drain ``events`` (queued beforehand, not timed)."""
    client = aioredis.Redis.from_url(redis_url)
    await client.delete(EVENT_STREAM)
    await backlog(client, events)
    store = StoreThread(lambda: open_store(db_path))
    applier = Applier(client, store, batch_size=BATCH)
    await applier.ensure_group()
    started = time.perf_counter()
    drained = await applier.drain()
    seconds = time.perf_counter() - started
    store.close()
    await client.aclose()
    if drained.result.applied != len(events):
        raise RuntimeError(f"applied {drained.result.applied} of {len(events)} events")
    return seconds


def bench_events(options: Options) -> list[Event]:
    pool = workload.events(workload.deliveries(options.count(4000, 500)))
    wanted = options.count(200_000, 3_000)  # the issue: a backlog of 200,000 queued events
    found = list(pool)
    copy = 0
    while len(found) < wanted:
        copy += 1
        found += workload.renamed(pool, copy)
    now = int(time.time() * 1_000_000)  # as the receiver stamps each event it queues
    tolerance = Settings.clock_skew_seconds * 1_000_000
    return [received(event, now, tolerance) for event in found[:wanted]]


def run(options: Options) -> StageResult:
    result = StageResult("apply")
    work = options.workdir / "apply"
    work.mkdir(parents=True, exist_ok=True)
    events = bench_events(options)
    rows = [row(event) for event in events]
    ours_seconds = raw_seconds = 0.0
    rounds = options.count(2, 1)
    with RedisServer(work / "redis", persistent=False) as server:
        for n in range(rounds):
            raw_seconds += raw_upsert(work / f"raw{n}.db", rows)
            ours_seconds += asyncio.run(applier_drain(server.url, work / f"mirror{n}.db", events))
    figure = Figure("apply", "events/s", len(events) * rounds / ours_seconds,
                    len(events) * rounds / raw_seconds)
    figure.note = f"{len(events)} distinct events (simulator lifecycles), {rounds} round(s)"
    result.figures.append(figure.require_ratio_at_least(TARGET))
    result.commands += [
        f"ours: Applier(batch_size={BATCH}).drain() over a backlog of {len(events)} events "
        "XADDed beforehand (untimed); mirror = store.open_store (WAL, synchronous=NORMAL)",
        f"baseline: sqlite3 executemany upsert of one row per event, {BATCH} per transaction, "
        "WAL, synchronous=NORMAL",
    ]
    return result
