"""Refetch lanes, the worker's side: one bounded queue of fetch requests per (provider, account),
taken under a lease and served at the account's budget. Requests are queued through
``meetsync.queue`` (the receiver and the read API do too); this module takes and serves them.

A fetch request (a hint from an unsigned or partial delivery, a tie, a start-URL refresh, a
read's ``?fresh=true``) waits in its account's lane, never in arq's job queue: an arq job that
waits on its account's request budget holds one of the worker's job slots, so a flood of
hints for one account used to starve every other account's refetches and every cron
(``worker/main.py`` serves each lane with a task of its own and keeps arq for the crons).

Why this design:

- **Per-account lanes, served at the budget's pace.** Each worker runs one task per configured
  account with API credentials; it takes a request only when the account's budget can serve
  it at once, so a lane never holds capacity another account, or a cron, needs. Several
  workers may serve one lane: a take is one atomic script.
- **Bounded.** A lane holds at most ``bound`` requests (waiting plus in flight): what its
  budget can serve within the horizon (``MEETSYNC_REFETCH_HORIZON_SECONDS``, budget rate x
  horizon). Past it, a request is not queued: it *collapses* into the lane's single "verify
  soon" mark, which makes the account's next reconcile sweep run at the cron's next tick
  instead of after its interval (a sweep finds what the lost requests would have). Redis
  holds at most ``bound`` ids, four small keys and a counter hash per configured account,
  whatever an attacker sends.
- **Known ids first.** A request is scored by tier then arrival: an id the mirror already holds
  (tier 0) before one it has never seen (tier 1, what a forged hint names). The receiver asks
  the mirror once per hint; when the lane is full, a known id displaces the newest unknown one
  (which collapses into the mark).
- **Crash-safe.** A take moves the id to the lane's in-flight set with a lease; ``done`` removes
  it once the fetch is written. A worker that dies mid-fetch leaves it leased: when the lease
  runs out, the next take by any worker puts it back at its old score. At-least-once, made
  harmless by the store's guards.
- **Folded.** A request for an id already waiting or in flight adds nothing (the fetch is
  stamped before it asks; the next sweep repairs what it could not see).

Keys and counters: ``meetsync.queue``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from meetsync.queue import PREFIX, TIER, LaneKeys, clock_ms

log = structlog.get_logger(__name__)

LEASE_SECONDS = 120.0  # a fetch's lease; past it another take puts the request back

# KEYS: waiting, in_flight, scores. ARGV: now ms, lease ms. Returns the id taken, or false.
_TAKE = """
local now = tonumber(ARGV[1])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[3], id) or now, id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
local top = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if not top[1] then return false end
redis.call('ZREM', KEYS[1], top[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), top[1])
redis.call('HSET', KEYS[3], top[1], top[2])
return top[1]
"""

# KEYS: waiting, in_flight, scores. ARGV: id, now ms. Back in line behind its own tier.
_RELEASE = """
local score = redis.call('HGET', KEYS[3], ARGV[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  local tier = math.floor(tonumber(score or 0) / TIER)
  redis.call('ZADD', KEYS[1], tier * TIER + tonumber(ARGV[2]), ARGV[1])
end
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
""".replace("TIER", str(TIER))


async def take(
    redis: Redis, provider: str, account: str, *, lease_seconds: float = LEASE_SECONDS,
    now_ms: int | None = None,
) -> str | None:
    """The lane's first request, leased to the caller (``done`` or ``release`` it); None when
    the lane is empty. Expired leases go back in line first."""
    keys = LaneKeys.of(provider, account)
    now = now_ms if now_ms is not None else clock_ms()
    taken = await redis.eval(  # type: ignore[misc]
        _TAKE, 3, keys.waiting, keys.in_flight, keys.scores, str(now),
        str(int(lease_seconds * 1000)))
    if taken is None:
        return None
    return taken.decode() if isinstance(taken, bytes) else str(taken)


async def done(redis: Redis, provider: str, account: str, appointment_id: str) -> None:
    keys = LaneKeys.of(provider, account)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.in_flight, appointment_id)
        pipe.hdel(keys.scores, appointment_id)
        await pipe.execute()


async def release(redis: Redis, provider: str, account: str, appointment_id: str) -> None:
    """Put a taken request back (the provider asked us to wait): behind the others of its
    tier, so one appointment the API keeps failing cannot hold the lane's head."""
    keys = LaneKeys.of(provider, account)
    await redis.eval(  # type: ignore[misc]
        _RELEASE, 3, keys.waiting, keys.in_flight, keys.scores, appointment_id, str(clock_ms()))


async def take_verify_mark(redis: Redis, provider: str, account: str) -> bool:
    """Whether the lane asked for a sweep soon; clears the mark (one worker gets it)."""
    return bool(await redis.delete(LaneKeys.of(provider, account).verify))


async def outstanding(redis: Redis) -> int:
    """Requests waiting or in flight in every lane on this Redis (for tools waiting for the
    worker to go idle: the demo)."""
    total = 0
    async for key in redis.scan_iter(match=f"{PREFIX}*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if not name.endswith((":scores", ":verify", ":counts")):
            total += int(await redis.zcard(name))
    return total


Fetch = Callable[[str], Awaitable[Any]]


class RetryLater(Exception):
    """The provider asked us to wait (``seconds``): the request goes back in line."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry in {seconds}s")
        self.seconds = seconds


class Lane:
    """Serves one account's lane in one worker: takes a request when the account's budget
    can serve it (``ready``), fetches it (``fetch``), then marks it done."""

    def __init__(
        self, redis: Redis, provider: str, account: str, fetch: Fetch, *,
        ready: Callable[[], float], lease_seconds: float = LEASE_SECONDS,
        idle_seconds: float = 0.2,
    ) -> None:
        self.redis = redis
        self.provider = provider
        self.account = account
        self.fetch = fetch
        self.ready = ready  # seconds until the budget can grant a request (0: now)
        self.lease_seconds = lease_seconds
        self.idle_seconds = idle_seconds
        self.fetched = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=max(seconds, 0.01))
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Until ``stop()``; Redis outages and failed fetches are logged and waited out."""
        delay = self.idle_seconds
        while not self._stopping.is_set():
            try:
                wait = self.ready()
                if wait > 0:
                    await self._pause(min(wait, 1.0))
                    continue
                if await self.once():
                    delay = self.idle_seconds
                    continue
                await self._pause(self.idle_seconds)
            except RetryLater as exc:
                await self._pause(exc.seconds)
            except (RedisError, OSError) as exc:
                log.warning("refetch_lane_redis_unavailable", provider=self.provider,
                            account=self.account, error_type=type(exc).__name__)
                await self._pause(delay)
                delay = min(delay * 2, 5.0)

    async def once(self) -> bool:
        """Take and fetch one request; False when the lane is empty."""
        appointment_id = await take(self.redis, self.provider, self.account,
                                    lease_seconds=self.lease_seconds)
        if appointment_id is None:
            return False
        try:
            await self.fetch(appointment_id)
        except RetryLater:
            await release(self.redis, self.provider, self.account, appointment_id)
            raise
        except asyncio.CancelledError:
            raise  # leased: put back when the lease runs out
        except Exception as exc:
            # A bug or the store unreachable: back in line, tried again after the others.
            log.error("refetch_lane_fetch_failed", provider=self.provider, account=self.account,
                      error_type=type(exc).__name__)
            await release(self.redis, self.provider, self.account, appointment_id)
            await self._pause(1.0)
            return True
        await done(self.redis, self.provider, self.account, appointment_id)
        self.fetched += 1
        return True
