"""Workers share out the queue's streams by leases (``worker/partitions.py``): each stream served
by one worker, all streams served, shares even; a worker leaving (cleanly or dead) hands its
share over; a batch slower than the claim timeout is neither taken over nor applied twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from redis.asyncio.cluster import RedisCluster

from meetsync.dev.redis_server import RedisServer
from meetsync.queue import STATS, QueueClient, backlog, publish, streams
from meetsync.store import Store, open_store
from meetsync.worker.applier import Applier, StoreThread
from meetsync.worker.partitions import Leases, assign, lease_key
from tests.worker.test_partitions import history

T = TypeVar("T")
PARTITIONS = 4
STREAMS = streams(PARTITIONS)


@given(streams=st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=40),
       members=st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=8))
def test_every_stream_has_one_owner_and_shares_are_even(
    streams: list[str], members: list[str]
) -> None:
    owners = assign(streams, members)
    if not members:
        assert owners == {}
        return
    assert set(owners) == set(streams) and set(owners.values()) <= set(members)
    counts = [sum(1 for owner in owners.values() if owner == m) for m in members]
    assert max(counts) - min(counts) <= 1
    assert assign(streams, reversed(members)) == owners  # the same answer in every worker


def test_a_member_joining_moves_few_streams() -> None:
    many = [f"meetsync:events:{{p{n}}}" for n in range(64)]
    before = assign(many, ["a", "b", "c"])
    after = assign(many, ["a", "b", "c", "d"])
    moved = sum(1 for s in many if before[s] != after[s])
    assert moved <= 32  # modulo over the sorted members would move ~48


class Cluster(RuleBasedStateMachine):
    """Workers join and leave (cleanly) in any order; after every single tick no stream has
    two holders, and once every worker has ticked a few times each holds its fair share."""

    url = ""  # the test's Redis

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = aioredis.Redis.from_url(self.url)
        self.run(self.redis.flushdb())
        self.workers: dict[str, Leases] = {}
        self.joined = 0

    def run(self, step: Awaitable[T]) -> T:
        return self.loop.run_until_complete(step)

    def teardown(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()

    def tick_all(self, rounds: int) -> None:
        for _ in range(rounds):
            for worker in list(self.workers.values()):
                self.run(worker.tick())
                self.disjoint()

    def disjoint(self) -> None:
        held = [worker.held() for worker in self.workers.values()]
        assert sum(len(h) for h in held) == len(frozenset().union(*held))

    @rule()
    def join(self) -> None:
        self.joined += 1
        name = f"w{self.joined}"
        self.workers[name] = Leases(self.redis, STREAMS, name, ttl_ms=60_000)
        self.tick_all(1)

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        if self.workers:
            name = data.draw(st.sampled_from(sorted(self.workers)))
            self.run(self.workers.pop(name).leave())
            self.tick_all(1)

    @invariant()
    def settled_coverage_is_complete_and_fair(self) -> None:
        self.tick_all(3)
        if not self.workers:
            return
        held = {name: worker.held() for name, worker in self.workers.items()}
        assert frozenset().union(*held.values()) == frozenset(STREAMS)
        sizes = [len(h) for h in held.values()]
        assert max(sizes) - min(sizes) <= 1


def test_join_and_leave_keep_coverage_complete_and_disjoint(redis_server: RedisServer) -> None:
    Cluster.url = redis_server.url
    Cluster.TestCase.settings = settings(max_examples=15, stateful_step_count=8, deadline=None)
    Cluster.TestCase().runTest()


async def test_a_dead_workers_share_is_taken_over_after_the_lease(
    redis: aioredis.Redis,
) -> None:
    ttl = 300
    first, second = (Leases(redis, STREAMS, name, ttl_ms=ttl) for name in ("a", "b"))
    for _ in range(3):
        await first.tick()
        await second.tick()
    assert first.held() and second.held() and not first.held() & second.held()
    # ``first`` stops ticking (killed): its leases stand until they lapse.
    await second.tick()
    assert second.held() != frozenset(STREAMS)
    await asyncio.sleep(ttl / 1000 + 0.05)
    await second.tick()
    await second.tick()
    assert second.held() == frozenset(STREAMS)
    assert not first.holds(STREAMS[0])  # by its own clock too: it would read no more


class SlowStore(StoreThread):
    """A store whose every call takes ``delay`` seconds more."""

    def __init__(self, open_: Callable[[], Store], delay: float) -> None:
        super().__init__(open_)
        self.delay = delay

    async def run(self, fn: Callable[[Store], T]) -> T:
        await asyncio.sleep(self.delay)
        return await super().run(fn)


@contextlib.asynccontextmanager
async def running(*appliers: Applier) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(applier.run(block_ms=50)) for applier in appliers]
    try:
        yield
    finally:
        for applier in appliers:
            applier.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


async def eventually(check: Callable[[], Awaitable[bool]], patience: float = 10) -> None:
    deadline = time.monotonic() + patience
    while not await check():
        assert time.monotonic() < deadline, "not within the patience"
        await asyncio.sleep(0.05)


def holdings(*appliers: Applier) -> list[frozenset[str]]:
    return [a.leases.held() if a.leases else frozenset() for a in appliers]


async def share_out_and_hand_over(queue: QueueClient, tmp_path: Path) -> None:
    """Two appliers split the streams; one stops and the other serves them all; every event
    applied once."""
    events = history(seed=8, appointments=40)
    one, two = (Applier(queue, StoreThread(lambda: open_store(tmp_path / "mirror.db")),
                        partitions=PARTITIONS, name=name, batch_size=20, claim_idle_ms=600)
                for name in ("one", "two"))

    async def shared() -> bool:
        a, b = holdings(one, two)
        return bool(a) and bool(b) and a | b == frozenset(STREAMS)

    async with running(one):
        async with running(two):
            await eventually(shared)
            a, b = holdings(one, two)
            assert not a & b and abs(len(a) - len(b)) <= 1
            for event in events[: len(events) // 2]:
                await publish(queue, event, PARTITIONS)
            await eventually(lambda: drained(queue))
        # ``two`` stopped cleanly: ``one`` takes its share at its next ticks, not the lease's.
        started = time.monotonic()
        await eventually(lambda: _holds_all(one), patience=2)
        assert time.monotonic() - started < 2
        for event in events[len(events) // 2:]:
            await publish(queue, event, PARTITIONS)
        await eventually(lambda: drained(queue))
    one.store.close()
    two.store.close()
    assert int(await queue.hget(STATS, "applied") or 0) == len(events)  # type: ignore[misc]
    assert int(await queue.hget(STATS, "duplicates") or 0) == 0  # type: ignore[misc]


async def _holds_all(applier: Applier) -> bool:
    return holdings(applier)[0] == frozenset(applier.streams)


async def drained(queue: QueueClient) -> bool:
    return (await backlog(queue, PARTITIONS)).queued == 0


async def test_two_appliers_share_the_streams_and_one_takes_over(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    await share_out_and_hand_over(redis, tmp_path)


async def test_two_appliers_share_the_streams_on_a_cluster(
    cluster: RedisCluster, tmp_path: Path
) -> None:
    await share_out_and_hand_over(cluster, tmp_path)
    assert [await cluster.get(lease_key(s)) for s in STREAMS] == [None] * len(STREAMS)  # freed


async def test_a_batch_slower_than_the_claim_timeout_is_applied_once(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    """The lease and the batch's claims are kept while a slow batch is applied: the other
    worker neither takes the stream over nor claims the entries."""
    events = history(seed=9, appointments=10)
    # 1 s, not less: a loaded machine (CI runs 4 test workers on 2 cores) can stall a renewal
    # by a few hundred ms; the batch still takes three claim timeouts.
    claim_idle_ms = 1000
    slow = Applier(redis, SlowStore(lambda: open_store(tmp_path / "mirror.db"), 3.0),
                   name="slow", claim_idle_ms=claim_idle_ms)
    other = Applier(redis, StoreThread(lambda: open_store(tmp_path / "mirror.db")),
                    name="other", claim_idle_ms=claim_idle_ms)
    for event in events:
        await publish(redis, event)
    async with running(slow):
        await eventually(lambda: _holds_all(slow))
        async with running(other):
            await eventually(lambda: drained_one(redis), patience=30)
            assert holdings(other) == [frozenset()]
    slow.store.close()
    other.store.close()
    assert int(await redis.hget(STATS, "applied") or 0) == len(events)  # type: ignore[misc]
    assert int(await redis.hget(STATS, "duplicates") or 0) == 0  # type: ignore[misc]


async def drained_one(redis: aioredis.Redis) -> bool:
    return (await backlog(redis, 1)).queued == 0


async def test_a_slow_batch_keeps_its_entries_claimed(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Without leases (``drain_once``, as the CLI's burst mode): another consumer's claim of
    stale entries finds none of a batch still being applied, however slow."""
    events = history(seed=10, appointments=5)
    slow = Applier(redis, SlowStore(lambda: open_store(tmp_path / "mirror.db"), 3.0),
                   name="slow", claim_idle_ms=1000)
    other = Applier(redis, StoreThread(lambda: open_store(tmp_path / "mirror.db")),
                    name="other", claim_idle_ms=1000)
    await slow.ensure_group()
    for event in events:
        await publish(redis, event)
    batch = asyncio.create_task(slow.drain_once(block_ms=None))
    await asyncio.sleep(2.0)  # two claim timeouts into the slow batch
    assert (await other.drain_once(block_ms=None)).read == 0
    assert (await batch).result.applied == len(events)
    slow.store.close()
    other.store.close()
