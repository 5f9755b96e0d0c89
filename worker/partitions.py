"""Which worker serves which stream of the queue: leases in Redis, shared out fairly.

Workers that all read every partition contend for the same appointments: on PostgreSQL each
batch locks its appointments, so two workers' batches wait on each other and a second worker
adds almost nothing (BENCHMARKS.md). Instead each stream is served by one worker at a time, the
holder of its lease, and the streams are shared out among the live workers:

- **Membership.** Each worker heartbeats into one sorted set (``MEMBERS``), scored with its
  expiry by the Redis server's clock (so hosts' clocks never disagree on who is alive); a
  worker that stops heartbeating drops out after ``ttl_ms``.
- **Assignment.** Every worker computes the same share from the same members (``assign``): as
  even as can be (counts differ by one at most), and each stream goes to the member that
  ranks first for it by rendezvous hashing among those with room, so a worker joining or
  leaving moves few streams.
- **Leases.** A worker serves a stream only while it holds that stream's lease (taken when
  free, renewed while its own: a script on its one key), so two workers never serve one
  stream, even while their views of the members differ. A worker hands a stream over by
  stopping its reading, finishing its batch, then deleting its lease (compare-and-delete); the
  new owner takes it at its next tick. A dead worker's leases expire after ``ttl_ms``, the
  claim timeout: then its entries are idle long enough to be claimed by the next holder.

Every command touches one key, and every script one key, so it all runs on Redis Cluster.
A lease key carries its stream's ``{...}`` hash tag: it sits in the stream's slot.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence

from meetsync.queue import QueueClient

MEMBERS = "meetsync:appliers"
MIN_TTL_MS = 100  # a claim timeout of 0 (tests) would expire a lease as it is taken
MAX_TICK_SECONDS = 1.0  # a new worker gets its share within a couple of ticks

# Heartbeat: drop the expired members, (re)add or remove this one, answer the live ones.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
# Take a free lease or renew our own: 1; another worker's: 0.
TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(stream: str) -> str:
    """The lease of one stream, in its slot (beside it, as its failure counts are)."""
    return f"{stream}:lease"


def _rank(member: str, stream: str) -> bytes:
    return hashlib.blake2b(f"{member}\x00{stream}".encode(), digest_size=8).digest()


def assign(streams: Sequence[str], members: Iterable[str]) -> dict[str, str]:
    """The member serving each stream: every worker that sees the same members computes the
    same answer. Shares differ by one stream at most (the first members by name take the
    remainder), and each stream goes to its highest-ranked member (rendezvous hashing) that
    still has room, so a member joining or leaving moves few streams."""
    live = sorted(set(members))
    if not live:
        return {}
    share, extra = divmod(len(streams), len(live))
    room = {member: share + (index < extra) for index, member in enumerate(live)}
    owners: dict[str, str] = {}
    for stream in streams:
        for member in sorted(live, key=lambda m: _rank(m, stream), reverse=True):
            if room[member]:
                room[member] -= 1
                owners[stream] = member
                break
    return owners


class Leases:
    """One worker's leases on the queue's streams; ``tick()`` keeps them, periodically."""

    def __init__(
        self, redis: QueueClient, streams: Sequence[str], name: str, *, ttl_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.streams = tuple(streams)
        self.name = name
        self.ttl_ms = max(ttl_ms, MIN_TTL_MS)
        self.clock = clock
        # Renew well within the lease: a third of it, and at least once a second.
        self.interval = min(self.ttl_ms / 3000, MAX_TICK_SECONDS)
        self.wanted: frozenset[str] = frozenset()  # this worker's share by the last tick
        self._until: dict[str, float] = {}  # stream -> when its lease lapses (our clock)

    def holds(self, stream: str) -> bool:
        """Whether this worker still surely holds the stream's lease: renewed less than a
        lease's time ago (counted from when the renewal was sent)."""
        return self._until.get(stream, 0.0) > self.clock()

    def held(self) -> frozenset[str]:
        return frozenset(stream for stream in self.streams if self.holds(stream))

    async def tick(self, busy: Iterable[str] = ()) -> frozenset[str]:
        """Heartbeat; renew the leases held and wanted (or ``busy``: a batch of them still
        being applied), release the others, take the free ones of this worker's share.
        Returns the streams held now."""
        sent = self.clock()
        members = await self.redis.eval(HEARTBEAT, 1, MEMBERS, self.name, str(self.ttl_ms))  # type: ignore[misc]
        owners = assign(self.streams, (m.decode() if isinstance(m, bytes) else m
                                       for m in members))
        self.wanted = frozenset(s for s, owner in owners.items() if owner == self.name)
        keep = self.wanted | set(busy)
        held = self.held()
        take = sorted((held & keep) | self.wanted)  # renewed, or taken if free
        release = sorted(held - keep)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in take:
                pipe.eval(TAKE, 1, lease_key(stream), self.name, str(self.ttl_ms))
            for stream in release:
                pipe.eval(RELEASE, 1, lease_key(stream), self.name)
            answers = await pipe.execute()
        until = sent + self.ttl_ms / 1000
        for stream, ok in zip(take, answers[: len(take)], strict=True):
            if ok:
                self._until[stream] = until
            else:  # another worker's (ours lapsed, or it has not let go yet)
                self._until.pop(stream, None)
        for stream in release:
            self._until.pop(stream, None)
        return self.held()

    async def leave(self) -> None:
        """Release every lease and leave the members (a clean shutdown): the others take this
        worker's share at their next tick instead of after the lease's time."""
        held = sorted(self._until)
        self._until.clear()
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in held:
                pipe.eval(RELEASE, 1, lease_key(stream), self.name)
            pipe.eval(HEARTBEAT, 1, MEMBERS, self.name, "0")
            await pipe.execute()
