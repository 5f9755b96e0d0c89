"""The applier drains the real Redis stream into a real SQLite mirror, at least once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import redis.asyncio as aioredis

from meetsync.events import Event, Meeting
from meetsync.queue import EVENT_STREAM, FIELD, GROUP, STATS, publish
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread
from tests.sql import query, writes_held


def snapshot(eid: str, at: int, mid: str, appt: str = "appt_1", **meeting: str) -> Event:
    return Event(
        id=eid, provider="savvycal", type="appointment.meeting.updated", occurred_at=at,
        appointment_id=appt, appointment_status="scheduled", end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id=mid, status=meeting.pop("status", "created"), **meeting),
    )


def applier(redis: aioredis.Redis, db_path: Path, **kwargs: int) -> Applier:
    return Applier(redis, StoreThread(lambda: open_store(db_path)), **kwargs)  # type: ignore[arg-type]


async def test_queued_events_reach_the_mirror_and_leave_the_stream(
    redis: aioredis.Redis, db_path: Path
) -> None:
    app = applier(redis, db_path, batch_size=7)
    await app.ensure_group()
    for i in range(50):
        await publish(redis, snapshot(f"evt_{i:03d}", i, "amtg_a", appt=f"appt_{i % 5}"))
    await publish(redis, snapshot("evt_000", 0, "amtg_a", appt="appt_0"))  # a duplicate
    drained = await app.drain()
    assert (drained.read, drained.result.applied, drained.result.duplicates) == (51, 50, 1)
    assert await redis.xlen(EVENT_STREAM) == 0
    stats = await redis.hgetall(STATS)
    assert int(stats[b"applied"]) == 50 and int(stats[b"duplicates"]) == 1
    assert query(db_path, "SELECT count(*) FROM events") == [(50,)]
    app.store.close()


async def test_entries_of_a_dead_consumer_are_claimed_and_applied(
    redis: aioredis.Redis, db_path: Path
) -> None:
    app = applier(redis, db_path, claim_idle_ms=0)
    await app.ensure_group()
    await publish(redis, snapshot("evt_1", 1, "amtg_a", host_url="https://h/1"))
    # a worker that read the entry and died before acknowledging it
    taken = await redis.xreadgroup(GROUP, "dead-worker", {EVENT_STREAM: ">"}, count=10)
    assert len(taken[0][1]) == 1
    drained = await app.drain()
    assert drained.result.applied == 1
    with open_store(db_path) as store:
        assert store.current_meeting("appt_1")["host_url"] == "https://h/1"  # type: ignore[index]
    assert (await redis.xpending(EVENT_STREAM, GROUP))["pending"] == 0
    app.store.close()


async def test_poison_event_is_retried_then_dead_lettered_redacted(
    redis: aioredis.Redis, db_path: Path
) -> None:
    app = applier(redis, db_path, claim_idle_ms=0, max_attempts=3)
    await app.ensure_group()
    poison = snapshot("evt_bad", 1, "amtg_x", host_url="https://h/SECRET", password="PW")
    raw = poison.to_json().replace(b'"appointment_id":"appt_1"', b'"appointment_id":null')
    await redis.xadd(EVENT_STREAM, {FIELD: raw})
    await redis.xadd(EVENT_STREAM, {FIELD: b"not json at all"})
    await publish(redis, snapshot("evt_ok", 2, "amtg_a"))
    rounds = [await app.drain_once(block_ms=None) for _ in range(4)]
    assert sum(r.result.applied for r in rounds) == 1
    assert sum(r.dead_lettered for r in rounds) == 2
    assert rounds[0].retrying == 1
    with open_store(db_path) as store:
        letters = store.dead_letters()
        dump = store.conn.execute("SELECT payload, reason FROM dead_letters").fetchall()
    assert sorted(d["event_id"] for d in letters)[1:] == ["evt_bad"]
    assert "SECRET" not in str(dump) and "PW" not in str(dump)
    assert await redis.xlen(EVENT_STREAM) == 0
    app.store.close()


async def test_the_next_batch_is_read_while_the_store_applies_this_one(
    redis: aioredis.Redis, db_path: Path
) -> None:
    """Read-ahead: while the store applies one batch (held here by another writer's lock),
    the applier has read the next; none of the first is read twice, even with a claim timeout
    of 0 (every pending entry stale at once), and all apply once, in order."""
    app = Applier(redis, StoreThread(lambda: open_store(db_path)), batch_size=5,
                  claim_idle_ms=0, busy_backoff=0.01)
    await app.ensure_group()
    for i in range(15):
        await publish(redis, snapshot(f"evt_{i:03d}", i, f"amtg_{i}"))
    with writes_held(db_path):
        drain = asyncio.ensure_future(app.drain())
        assert await _pending_reaches(redis, 10)
        await asyncio.sleep(0.1)  # a third read would show by now
        assert await _pending(redis) == 10
        assert query(db_path, "SELECT count(*) FROM events") == [(0,)]
    drained = await drain
    assert (drained.read, drained.result.applied, drained.result.duplicates) == (15, 15, 0)
    with open_store(db_path) as store:
        assert store.current_meeting("appt_1")["id"] == "amtg_14"  # type: ignore[index]
    assert await redis.xlen(EVENT_STREAM) == 0
    app.store.close()


async def test_a_batch_waiting_for_the_store_reads_no_further(
    redis: aioredis.Redis, db_path: Path
) -> None:
    """A batch waiting for the store's thread (busy here; in ``run()``, with another
    partition's batch) reads nothing ahead until the store begins it: what arrives meanwhile
    joins the next batch, rather than queueing up behind it as many small ones."""
    app = applier(redis, db_path, batch_size=5)
    await app.ensure_group()
    for i in range(15):
        await publish(redis, snapshot(f"evt_{i:03d}", i, f"amtg_{i}"))
    gate = threading.Event()
    held = asyncio.ensure_future(app.store.run(lambda _: gate.wait(30)))
    drain = asyncio.ensure_future(app.drain())
    try:
        assert await _pending_reaches(redis, 5)
        await asyncio.sleep(0.2)  # a read ahead would show by now
        assert await _pending(redis) == 5
    finally:
        gate.set()
    await held
    drained = await drain
    assert (drained.read, drained.result.applied, drained.result.duplicates) == (15, 15, 0)
    app.store.close()


async def _pending(redis: aioredis.Redis) -> int:
    return int((await redis.xpending(EVENT_STREAM, GROUP))["pending"])


async def _pending_reaches(redis: aioredis.Redis, count: int) -> bool:
    for _ in range(1000):  # up to 10 s: a loaded CI machine
        if await _pending(redis) >= count:
            return True
        await asyncio.sleep(0.01)
    return False
