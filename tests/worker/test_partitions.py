"""A partitioned event queue: each appointment's events on one partition, chosen the same way by
every process and release; appliers drain every partition into the mirror in-order delivery
reaches, and claim what a dead worker left pending on any of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from meetsync.events import Event, received, to_micros
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.queue import (
    EVENT_STREAM,
    FIELD,
    GROUP,
    Backlog,
    backlog,
    partition_of,
    stream_key,
    streams,
)
from meetsync.store import open_store
from meetsync.webhooks.receiver import GroupCommit
from meetsync.worker.applier import Applier, StoreThread
from tests.store.test_order_property import state

names = st.text(min_size=1, max_size=30)


def test_partition_of_is_pinned_across_processes_and_releases() -> None:
    """CRC-32, not ``hash()``: these values must never change, or an upgrade would split one
    appointment's queued events between two partitions."""
    assert [partition_of("savvycal", "appt_1", n) for n in (1, 2, 4, 8, 64)] == [0, 1, 3, 7, 55]
    assert [partition_of("zoom", "87654321", n) for n in (1, 2, 4, 8, 64)] == [0, 1, 1, 1, 1]
    assert [partition_of("avon", "A-1", n) for n in (1, 2, 4, 8, 64)] == [0, 0, 0, 4, 28]


@given(provider=names, appointment=names, partitions=st.integers(1, 64))
def test_an_appointment_has_one_partition_in_range(
    provider: str, appointment: str, partitions: int
) -> None:
    """In range, the same on every call; one partition is always the unpartitioned stream."""
    chosen = partition_of(provider, appointment, partitions)
    assert 0 <= chosen < partitions
    assert chosen == partition_of(provider, appointment, partitions)
    assert partition_of(provider, appointment, 1) == 0


@given(partitions=st.integers(2, 64))
def test_stream_keys_keep_the_old_key_alone_and_carry_a_hash_tag(partitions: int) -> None:
    """One partition is ``meetsync:events`` (what older releases queued on); several are
    hash-tagged keys, the same whatever their count, served with the old key."""
    assert streams(1) == (EVENT_STREAM,)
    keys = streams(partitions)
    assert keys[-1] == EVENT_STREAM and len(set(keys)) == partitions + 1
    assert keys[3 % partitions] == stream_key(3 % partitions, 64) == (
        f"meetsync:events:{{p{3 % partitions}}}")


def history(seed: int, appointments: int) -> list[Event]:
    """A provider's events in the order it emitted them, stamped on receipt as the receiver
    stamps them."""
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    sim = SavvyCalSim(seed, start=start)
    now = to_micros(datetime.now(UTC))
    parsed = [parse_envelope(delivery.body) for delivery in sim.play(appointments)]
    return [received(event, now, 300_000_000) for event in parsed if isinstance(event, Event)]


def in_order(path: Path, events: list[Event]) -> None:
    with open_store(path) as store:
        for event in events:
            store.apply([event])


async def receive(redis: aioredis.Redis, events: list[Event], partitions: int) -> None:
    """Queue ``events`` as the receiver does, many requests at once (one pipeline a flush)."""
    queue = GroupCommit(redis, partitions)
    await asyncio.gather(*(queue.publish(event) for event in events))


async def test_a_partitioned_queue_spreads_appointments_and_drains_to_the_in_order_mirror(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    events = history(seed=5, appointments=60)
    await receive(redis, events, partitions=4)

    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key in streams(4):
        for _, fields in await redis.xrange(key):
            event = Event.from_json(fields[FIELD])
            seen[(event.provider, event.appointment_id)].add(key)
    assert sum(len(found) for found in seen.values()) == len(seen) == 60  # one stream each
    used = {key for found in seen.values() for key in found}
    assert used == set(streams(4)[:4])  # every partition; the old key stays empty
    for (provider, appointment_id), (key,) in seen.items():
        assert key == stream_key(partition_of(provider, appointment_id, 4), 4)

    applier = Applier(redis, StoreThread(lambda: open_store(tmp_path / "mirror.db")),
                      partitions=4, batch_size=16)
    drained = await applier.drain()
    applier.store.close()
    assert drained.read == drained.result.applied == len(events)
    assert await backlog(redis, 4) == Backlog(queued=0, pending=0, oldest_ms=None)

    in_order(tmp_path / "in_order.db", events)
    assert state(tmp_path / "mirror.db") == state(tmp_path / "in_order.db")


async def test_entries_a_dead_worker_left_pending_on_partitions_are_claimed(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    events = history(seed=6, appointments=20)
    applier = Applier(redis, StoreThread(lambda: open_store(tmp_path / "mirror.db")),
                      partitions=4, claim_idle_ms=0)
    await applier.ensure_group()
    await receive(redis, events, partitions=4)
    # A worker that read a batch from two partitions and died before acknowledging them.
    for partition in (0, 2):
        taken = await redis.xreadgroup(GROUP, "dead-worker", {stream_key(partition, 4): ">"},
                                       count=5)
        assert len(taken[0][1]) == 5
    assert (await backlog(redis, 4)).pending == 10

    drained = await applier.drain()
    applier.store.close()
    assert drained.result.applied == len(events)
    assert await backlog(redis, 4) == Backlog(queued=0, pending=0, oldest_ms=None)
    in_order(tmp_path / "in_order.db", events)
    assert state(tmp_path / "mirror.db") == state(tmp_path / "in_order.db")


async def test_a_running_applier_serves_every_partition_and_the_old_stream(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    """``run()`` wakes for whichever partition gets entries; what a release before partitions
    queued on ``meetsync:events`` is applied too (raising the count loses nothing)."""
    events = history(seed=7, appointments=20)
    legacy, rest = events[:10], events[10:]
    for event in legacy:
        await redis.xadd(EVENT_STREAM, {FIELD: event.to_json()})
    applier = Applier(redis, StoreThread(lambda: open_store(tmp_path / "mirror.db")),
                      partitions=4)
    task = asyncio.create_task(applier.run(block_ms=100))
    try:
        await receive(redis, rest, partitions=4)
        for _ in range(200):
            if await applier.store.run(lambda store: store.conn.execute(
                    "SELECT count(*) FROM events").fetchone()[0]) == len(events):
                break
            await asyncio.sleep(0.05)
    finally:
        applier.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
        applier.store.close()
    assert task.done() and task.exception() is None
    assert (await backlog(redis, 4)).queued == 0
    in_order(tmp_path / "in_order.db", events)
    assert state(tmp_path / "mirror.db") == state(tmp_path / "in_order.db")


async def test_the_backlog_sums_every_stream(redis: aioredis.Redis) -> None:
    """Depth, pending entries and the oldest entry over every stream the workers serve; a
    stream no worker has read yet (no consumer group) holds nothing pending."""
    assert await backlog(redis, 4) == Backlog(queued=0, pending=0, oldest_ms=None)
    first = await redis.xadd(stream_key(2, 4), {FIELD: b"x"})
    await redis.xadd(EVENT_STREAM, {FIELD: b"y"})
    await redis.xadd(stream_key(0, 4), {FIELD: b"z"})
    await redis.xgroup_create(stream_key(0, 4), GROUP, id="0")
    await redis.xreadgroup(GROUP, "w", {stream_key(0, 4): ">"})
    assert await backlog(redis, 4) == Backlog(queued=3, pending=1,
                                              oldest_ms=int(first.split(b"-")[0]))
