"""Only an event's own failure may dead-letter it; and a dead letter cannot fail on what the
event holds.

- An event with text no database stores (NUL: PostgreSQL's text refuses it) that reaches the
  stream anyway (an older receiver queued it) fails on its own, is dead-lettered with the text
  escaped, and the rest of its batch is applied.
- A store that cannot write for now (a real full disk, a lock held, a terminated backend) is
  waited out: entries pending, no attempt spent, nothing dead-lettered, all applied after.
- Redeliveries an outage brings (workers restarted, entries claimed from one another) are not
  attempts: a poison event still gets every one of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from meetsync.queue import EVENT_STREAM, FIELD
from meetsync.store import Store, open_store
from meetsync.worker.applier import Applier, StoreThread, failures_key
from tests.faults.conftest import (
    applied_ids,
    events_of,
    eventually,
    publish_all,
    queue_settled,
    recent_sim,
)
from tests.faults.test_dead_letters import poisoned
from tests.sql import execute, query, writes_held

MAX_ATTEMPTS = 3


def dead_letters(db: Path | str) -> list[dict[str, object]]:
    with open_store(db) as store:
        return store.dead_letters()


async def test_a_nul_queued_by_an_older_receiver_is_dead_lettered_and_the_batch_applies(
    redis: aioredis.Redis, db_path: Path
) -> None:
    events = events_of(recent_sim(71).play(20))
    nul_id = replace(events[3], id="evt_nul_appointment",
                     appointment_id=events[3].appointment_id + "\x00x")
    with_meeting = next(e for e in events if e.meeting is not None)
    assert with_meeting.meeting is not None
    nul_url = replace(with_meeting, id="evt_nul\x00url", meeting=replace(
        with_meeting.meeting, join_url="https://zoom.us/j/1\x00?pwd=secret"))
    await publish_all(redis, [*events[:10], nul_id, nul_url, *events[10:]])  # one batch
    applier = Applier(redis, StoreThread(lambda: open_store(db_path)), claim_idle_ms=0,
                      max_attempts=MAX_ATTEMPTS, busy_backoff=0.01)
    try:
        done = await applier.drain()
    finally:
        applier.store.close()
    assert (done.dead_lettered, done.retrying) == (2, 2 * (MAX_ATTEMPTS - 1))
    assert await queue_settled(redis)
    assert {e.id for e in events} <= applied_ids(db_path)
    letters = sorted(dead_letters(db_path), key=lambda d: str(d["event_id"]))
    assert [(d["event_id"], d["appointment_id"]) for d in letters] == [
        ("evt_nul\\u0000url", with_meeting.appointment_id),
        ("evt_nul_appointment", events[3].appointment_id + "\\u0000x"),
    ]
    assert all(d["attempts"] == MAX_ATTEMPTS and "NUL" in str(d["reason"]) for d in letters)
    payload = orjson.loads(query(db_path, "SELECT payload FROM dead_letters WHERE event_id = ?",
                                 ("evt_nul\\u0000url",))[0][0])
    assert payload["meeting"]["join_url"] == "https://zoom.us/j/1\\u0000?pwd=[redacted]"
    assert not await redis.exists(failures_key(EVENT_STREAM)), "counts go with their entries"


@pytest.mark.sqlite_only
async def test_a_full_disk_spends_no_attempt_and_everything_applies_once_there_is_room(
    redis: aioredis.Redis, db_path: Path
) -> None:
    events = events_of(recent_sim(72).play(60))
    open_store(db_path).close()

    def full() -> Store:
        """The mirror on a disk with no page left: SQLite's real SQLITE_FULL."""
        store = open_store(db_path)
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")
        return store

    applier = Applier(redis, StoreThread(full), claim_idle_ms=0, max_attempts=1,
                      busy_backoff=0.01)
    await applier.ensure_group()
    await publish_all(redis, events)
    running = asyncio.create_task(applier.run(block_ms=20))
    try:
        async def backed_off() -> bool:
            return applier.busy_waits >= 6

        await eventually(backed_off, patience=30)
        assert dead_letters(db_path) == []
        assert len(applied_ids(db_path)) < len(events), "the disk was full"
        assert not await redis.exists(failures_key(EVENT_STREAM)), "no attempt spent"
        pending = await redis.xpending(EVENT_STREAM, "appliers")
        assert pending["pending"] > 0, "the entries wait, pending"

        await applier.store.run(lambda store: store.conn.execute(
            "PRAGMA max_page_count = 1073741823"))

        async def settled() -> bool:
            return await queue_settled(redis)

        await eventually(settled, patience=30)
    finally:
        applier.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=10)
        applier.store.close()
    assert applied_ids(db_path) == {e.id for e in events}
    assert dead_letters(db_path) == []


async def test_redeliveries_during_an_outage_spend_none_of_a_poisons_attempts(
    redis: aioredis.Redis, db_path: Path
) -> None:
    events = events_of(recent_sim(73).play(20))
    poison, healthy = events[-1], events[:-1]
    await publish_all(redis, healthy)
    await redis.xadd(EVENT_STREAM, {FIELD: poisoned(poison)})
    stores = [StoreThread(lambda: open_store(db_path, busy_timeout=0.05)) for _ in range(4)]
    with writes_held(db_path):
        # Workers started and killed while the mirror is locked: each claims every entry
        # again (XPENDING's delivery count grows to 4) before dying in its backoff.
        for n, store in enumerate(stores):
            applier = Applier(redis, store, name=f"short-lived-{n}", claim_idle_ms=0,
                              max_attempts=MAX_ATTEMPTS, busy_backoff=0.01)
            await applier.ensure_group()
            stuck = asyncio.create_task(applier.drain_once(block_ms=None))

            async def waiting(applier: Applier = applier) -> bool:
                return applier.busy_waits >= 1

            await eventually(waiting)
            stuck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stuck
            store.close()
    delivered = await redis.xpending_range(EVENT_STREAM, "appliers", "-", "+", 100)
    assert {entry["times_delivered"] for entry in delivered} == {4}

    applier = Applier(redis, StoreThread(lambda: open_store(db_path)), name="survivor",
                      claim_idle_ms=0, max_attempts=MAX_ATTEMPTS, busy_backoff=0.01)
    try:
        done = await applier.drain()
    finally:
        applier.store.close()
    # Its own three failures, then its letter: not dead-lettered at its first.
    assert (done.retrying, done.dead_lettered) == (MAX_ATTEMPTS - 1, 1)
    assert applied_ids(db_path) == {e.id for e in healthy}
    assert [d["event_id"] for d in dead_letters(db_path)] == [poison.id]


async def test_a_terminated_backend_mid_batch_spends_no_attempt(
    redis: aioredis.Redis, db_path: Path, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL's own failure: a backend terminated by an administrator")
    events = events_of(recent_sim(74).play(20))
    await publish_all(redis, events)
    applier = Applier(redis, StoreThread(lambda: open_store(db_path, busy_timeout=20)),
                      claim_idle_ms=0, max_attempts=1, busy_backoff=0.01)
    await applier.ensure_group()
    with writes_held(db_path):
        draining = asyncio.create_task(applier.drain())

        async def blocked() -> bool:  # the batch is in its transaction, waiting on the lock
            return bool(query(db_path, "SELECT pid FROM pg_stat_activity WHERE application_name"
                                       " = 'meetsync' AND wait_event_type = 'Lock'"))

        await eventually(blocked)
        execute(db_path, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'meetsync' AND wait_event_type = 'Lock'")

        async def backed_off() -> bool:
            return applier.busy_waits >= 1

        await eventually(backed_off)
    try:
        done = await asyncio.wait_for(draining, timeout=30)
    finally:
        applier.store.close()
    assert (done.dead_lettered, done.retrying) == (0, 0)
    assert applied_ids(db_path) == {e.id for e in events}
    assert dead_letters(db_path) == []



async def test_a_value_too_long_for_an_index_fails_on_its_own_not_as_an_outage(
    redis: aioredis.Redis, db_path: Path, backend: str
) -> None:
    """PostgreSQL's "index row size exceeds maximum" (SQLSTATE 54000, a program limit) comes
    from the event: it is dead-lettered; it used to be taken for a busy store and retried
    forever, holding back everything queued behind it."""
    if backend != "postgresql":
        pytest.skip("SQLite's indexes take a key of any length")
    events = events_of(recent_sim(75).play(10))
    huge = replace(events[0], id="evt_huge", appointment_id=os.urandom(6000).hex())
    await publish_all(redis, [*events[:5], huge, *events[5:]])
    applier = Applier(redis, StoreThread(lambda: open_store(db_path)), claim_idle_ms=0,
                      max_attempts=MAX_ATTEMPTS, busy_backoff=0.01)
    try:
        done = await asyncio.wait_for(applier.drain(), timeout=30)
    finally:
        applier.store.close()
    assert (done.dead_lettered, done.retrying) == (1, MAX_ATTEMPTS - 1)
    assert applied_ids(db_path) == {e.id for e in events}
    assert [d["event_id"] for d in dead_letters(db_path)] == ["evt_huge"]


@pytest.mark.sqlite_only
async def test_a_dead_letter_the_store_refuses_holds_back_no_other(
    redis: aioredis.Redis, db_path: Path
) -> None:
    """One letter refused (here by a trigger: a real SQLite error, not the content's) stays
    pending and is tried again; the batch's other letters and events go through."""
    events = events_of(recent_sim(76).play(12))
    refused, other, healthy = events[0], events[1], events[2:]
    open_store(db_path).close()
    execute(db_path, "CREATE TRIGGER refuse_letter BEFORE INSERT ON dead_letters"
                     f" WHEN NEW.event_id = '{refused.id}' BEGIN SELECT RAISE(ABORT, 'no'); END")
    await publish_all(redis, healthy)
    for poison in (refused, other):
        await redis.xadd(EVENT_STREAM, {FIELD: poisoned(poison)})
    applier = Applier(redis, StoreThread(lambda: open_store(db_path)), claim_idle_ms=0,
                      max_attempts=MAX_ATTEMPTS, busy_backoff=0.01)
    await applier.ensure_group()
    try:
        for _ in range(MAX_ATTEMPTS + 1):
            await applier.drain_once(block_ms=None)
    finally:
        applier.store.close()
    assert applied_ids(db_path) == {e.id for e in healthy}
    assert [d["event_id"] for d in dead_letters(db_path)] == [other.id]
    pending = await redis.xpending_range(EVENT_STREAM, "appliers", "-", "+", 10)
    assert len(pending) == 1, "the refused letter's entry waits for its next try"
