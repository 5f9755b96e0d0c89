"""A poison event is retried, dead-lettered redacted, then replayed by refetching the provider."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.queue import EVENT_STREAM, FIELD
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread
from tests.faults.conftest import (
    API_TOKEN,
    applied_ids,
    events_of,
    eventually,
    mismatches,
    publish_all,
    queue_settled,
    recent_sim,
)


def poisoned(event: Event) -> bytes:
    """The event as a buggy producer might queue it: valid JSON the mirror refuses every time
    (``provider`` is part of every key: NOT NULL, refused at the inbox)."""
    raw: dict[str, Any] = orjson.loads(event.to_json())
    raw["provider"] = None
    return orjson.dumps(raw)


def cli(env: dict[str, str], *args: str) -> tuple[int, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "meetsync.cli", "dead-letters", *args],
        env=env, capture_output=True, timeout=60, check=False,
    )
    return done.returncode, orjson.loads(done.stdout) if done.stdout.strip() else None


async def test_poison_is_dead_lettered_and_replayed_from_the_provider(
    own_redis: RedisServer,
    db_path: Path,
    client_of: Callable[[RedisServer], aioredis.Redis],
    sim_api: Callable[[SavvyCalSim], str],
) -> None:
    sim = recent_sim(41)
    events = events_of(sim.play(30))
    # The last word on an appointment whose meeting carries credentials goes bad.
    poison = next(e for e in reversed(events) if e.meeting and e.meeting.host_url)
    assert poison.meeting is not None and poison.meeting.host_url and poison.meeting.password
    healthy = [e for e in events if e.id != poison.id]
    redis = client_of(own_redis)
    applier = Applier(redis, StoreThread(lambda: open_store(db_path)),
                      claim_idle_ms=50, max_attempts=3, busy_backoff=0.05)
    running = asyncio.create_task(applier.run(block_ms=50))
    try:
        await publish_all(redis, healthy[:10])
        for _ in range(2):  # delivered twice, as senders do
            await redis.xadd(EVENT_STREAM, {FIELD: poisoned(poison)})
        await redis.xadd(EVENT_STREAM, {FIELD: b"\x00 not an event"})
        await publish_all(redis, healthy[10:])

        async def settled() -> bool:
            return await queue_settled(redis)

        await eventually(settled)
        assert not running.done(), "the worker keeps going"
    finally:
        applier.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, timeout=5)
        applier.store.close()

    assert {e.id for e in healthy} <= applied_ids(db_path)
    assert poison.id not in applied_ids(db_path)
    store = open_store(db_path)
    # The poison first, then the unreadable entry (it has no appointment to refetch).
    letters = sorted(store.dead_letters(), key=lambda d: d["appointment_id"] is None)
    stored = store.conn.execute("SELECT reason, payload FROM dead_letters").fetchall()
    store.close()
    assert len(letters) == 2, "one letter per poison event, however often it was delivered"
    assert (letters[0]["event_id"], letters[0]["attempts"]) == (poison.id, 3)
    # Each backend's words: SQLite's "NOT NULL constraint failed: events.provider", or
    # PostgreSQL's 'null value in column "provider" ... violates not-null constraint'.
    assert re.search(r"(?i)not[ -]null", letters[0]["reason"])
    assert "provider" in letters[0]["reason"]
    assert (letters[1]["appointment_id"], letters[1]["reason"]) == (None, "unreadable event")
    assert poison.meeting.host_url not in str(stored)
    assert poison.meeting.password not in str(stored)
    payloads = [orjson.loads(payload) for _, payload in stored]
    assert [p["meeting"]["host_url"] for p in payloads if "meeting" in p] == ["[redacted]"]
    assert mismatches(sim, db_path), "the mirror lacks the poison's change until replayed"

    env = {**os.environ, "MEETSYNC_DB": str(db_path),
           "SAVVYCAL_API_URL": sim_api(sim), "SAVVYCAL_API_TOKEN": API_TOKEN,
           "LOG_LEVEL": "WARNING"}
    code, listed = cli(env, "list")
    assert code == 0 and sorted(d["id"] for d in listed) == sorted(d["id"] for d in letters)

    code, replayed = cli(env, "replay", str(letters[0]["id"]))
    assert code == 0
    assert replayed == [{"id": letters[0]["id"], "event_id": poison.id,
                         "appointment_id": poison.appointment_id, "outcome": "replayed",
                         "type": "refetch"}]
    assert mismatches(sim, db_path) == {}

    code, rest = cli(env, "replay", "--all")
    assert code == 1, "a letter with nothing to refetch stays, and says so"
    assert [r["outcome"] for r in rest] == ["skipped"]
    code, listed = cli(env, "list")
    assert [d["id"] for d in listed] == [letters[1]["id"]]
    code, everything = cli(env, "list", "--all")
    replayed_at = {d["id"]: d["replayed_at"] for d in everything}
    assert replayed_at[letters[0]["id"]] is not None and replayed_at[letters[1]["id"]] is None
