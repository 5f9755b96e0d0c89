"""The queue contract the receiver and the worker share: neither imports the other, both import
this (as arq keeps its key names in ``arq/constants.py`` for producer and consumer).

It holds the event stream (keys, entry format, publish, backlog), the pipeline's counters
(``meetsync:stats``), the refetch requests the receiver and the read API queue into the
account lanes (``worker/lanes.py`` takes and leases them), and the reconcile runs' list.

**The event stream.** The receiver appends each verified event to a Redis stream (``XADD``: one
round trip, durable as far as Redis persists). Workers read it through a consumer group and
acknowledge an entry only after its event is committed to the store, so a worker killed
mid-batch leaves its entries pending for another worker to claim: at-least-once, made harmless
by the store's inbox.

The stream may be split into partitions (``MEETSYNC_QUEUE_PARTITIONS``), so that a Redis Cluster
spreads it over its shards: an event goes to the partition of its appointment (a stable hash,
the same in every process and release), and every worker serves every partition. One partition
keeps the historical key ``meetsync:events``: upgrading loses nothing queued before. Of several,
partition 3 is ``meetsync:events:{p3}`` whatever their count (Redis Cluster places a key by its
``{...}`` hash tag), so raising the count keeps every key in use; and while there are several,
workers also serve ``meetsync:events``, where an older receiver may still queue. Lowering the
count strands the partitions dropped until they are drained (README: Partitioned queue and
Redis Cluster).

The queue may live on another Redis than arq's jobs: ``MEETSYNC_QUEUE_URL``, whose
``redis+cluster://`` (``rediss+cluster://``) scheme asks for a cluster client. The pipeline's
counters (``STATS``) live beside the stream, on the same client.

**The counters.** The hash holds a fixed set of fields: no field is ever named after what a
sender chose. An event type we do not handle counts in one field, ``ignored_types`` (its name
goes to the log only); releases before this one kept a field per type name
(``ignored_type:<name>``), which an unsigned sender could multiply without bound. ``folded``
shows those as part of ``ignored_types``, so ``meetsync stats`` and the status page stay short
on a deployment that still holds them (``HDEL meetsync:stats`` each ``ignored_type:*`` field,
or leave them: they no longer grow).

**Refetch requests.** A request waits in its account's lane, a bounded sorted set scored by tier
then arrival (an id the mirror holds before one it has never seen); past the bound it collapses
into the lane's "verify soon" mark. Each lane's hash ``...:counts`` (fields ``accepted``,
``folded``, ``collapsed``, ``dropped``: hints only) feeds the status page and the scrape; the
receiver also bumps fixed fields of ``meetsync:stats``. Lane keys live on arq's Redis
(``REDIS_URL``, one server): the scripts touch several keys of one lane at once. Why lanes, and
how they are served: ``worker/lanes.py``.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from meetsync.events import Event

EVENT_STREAM = "meetsync:events"
GROUP = "appliers"
STATS = "meetsync:stats"
FIELD = b"e"

QueueClient = Redis | RedisCluster  # the event stream's client: one server, or a cluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def partition_of(provider: str, appointment_id: str, partitions: int) -> int:
    """The partition of one appointment's events: CRC-32, not ``hash()``, whose value changes
    with each process (PYTHONHASHSEED) and would scatter an appointment's events."""
    return zlib.crc32(f"{provider}\x00{appointment_id}".encode()) % partitions


def stream_key(partition: int, partitions: int) -> str:
    """The key of one partition (see the module docstring for why one keeps the old key)."""
    return EVENT_STREAM if partitions == 1 else f"{EVENT_STREAM}:{{p{partition}}}"


def stream_of(event: Event, partitions: int) -> str:
    return stream_key(partition_of(event.provider, event.appointment_id, partitions), partitions)


def streams(partitions: int) -> tuple[str, ...]:
    """Every stream a worker serves: the partitions, and with several the unpartitioned one
    (what was queued before partitioning, or by a receiver not yet restarted)."""
    keys = tuple(stream_key(p, partitions) for p in range(partitions))
    return keys if partitions == 1 else (*keys, EVENT_STREAM)


def cluster_url(url: str) -> str | None:
    """The ``redis://`` URL redis-py takes for a ``redis+cluster://`` one; None when ``url``
    names a single server."""
    parts = urlsplit(url)
    plain = CLUSTER_SCHEMES.get(parts.scheme)
    return urlunsplit(parts._replace(scheme=plain)) if plain else None


def queue_client(url: str, **options: Any) -> QueueClient:
    """A client for the event stream at ``url`` (a cluster client for ``redis+cluster://``)."""
    plain = cluster_url(url)
    client: QueueClient = (RedisCluster.from_url(plain, **options) if plain is not None
                           else Redis.from_url(url, **options))
    return client


async def publish(redis: QueueClient, event: Event, partitions: int = 1) -> None:
    """Durably queue one event (returns once Redis has it)."""
    await redis.xadd(stream_of(event, partitions), {FIELD: event.to_json()})


@dataclass(frozen=True)
class Backlog:
    """What waits on the streams, summed over the partitions."""

    queued: int  # entries on the streams: not yet applied, or applied and not yet deleted
    pending: int  # read by a worker and not yet acknowledged
    oldest_ms: int | None  # the oldest entry's time by Redis's clock (its id); None: empty


async def backlog(redis: QueueClient, partitions: int) -> Backlog:
    """The streams' backlog, in one pipelined round trip (one per node on a cluster)."""
    keys = streams(partitions)
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.xlen(key)
            pipe.xrange(key, count=1)
            pipe.xpending(key, GROUP)
        # raise_on_error=False: XPENDING answers NOGROUP where no worker has run yet.
        answers = await pipe.execute(raise_on_error=False)
    for answer in answers:
        if isinstance(answer, Exception) and "NOGROUP" not in str(answer):
            raise answer
    lengths, firsts, helds = answers[0::3], answers[1::3], answers[2::3]
    pending = sum(int(held["pending"]) for held in helds if not isinstance(held, Exception))
    oldest = min((int(first[0][0].split(b"-")[0]) for first in firsts if first), default=None)
    return Backlog(sum(int(n) for n in lengths), pending, oldest)


async def count(redis: QueueClient, name: str, amount: int = 1) -> None:
    """Bump one of the pipeline's counters (``meetsync stats`` shows them)."""
    await redis.hincrby(STATS, name, amount)  # type: ignore[misc]


IGNORED_TYPES = "ignored_types"
LEGACY_IGNORED = "ignored_type:"


def folded(counters: Mapping[str, int]) -> dict[str, int]:
    """``counters`` with every legacy ``ignored_type:<name>`` field summed into
    ``ignored_types`` (absent when neither is there)."""
    shown: dict[str, int] = {}
    ignored = 0
    found = False
    for name, value in counters.items():
        if name == IGNORED_TYPES or name.startswith(LEGACY_IGNORED):
            ignored += value
            found = True
        else:
            shown[name] = value
    if found:
        shown[IGNORED_TYPES] = ignored
    return shown


AccountKey = tuple[str, str]
Outcome = Literal["accepted", "folded", "collapsed", "dropped"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "folded", "collapsed", "dropped")
# meetsync:stats fields, fixed: the first two kept their names from before lanes.
STAT_FIELDS: Mapping[Outcome, str] = {
    "accepted": "hints", "folded": "hints_folded", "collapsed": "hints_collapsed",
    "dropped": "hints_dropped",
}
TIER = 10**13  # score = tier * TIER + arrival (ms): every arrival (< 2**44 ms) fits under it
KNOWN, UNKNOWN = 0, 1
DEFAULT_BOUND = 300  # a caller without settings (tests, tools): 5 min at 60 requests/min
PREFIX = "meetsync:refetch:"


@dataclass(frozen=True)
class LaneKeys:
    """The Redis keys of one lane."""

    waiting: str  # sorted set: id -> tier * TIER + arrival ms
    in_flight: str  # sorted set: id -> lease deadline (ms)
    scores: str  # hash: id in flight -> its waiting score (put back with it)
    verify: str  # string: the "verify soon" mark
    counts: str  # hash: fixed outcome fields

    @classmethod
    def of(cls, provider: str, account: str) -> LaneKeys:
        base = f"{PREFIX}{provider}:{account}"
        return cls(base, f"{base}:inflight", f"{base}:scores", f"{base}:verify",
                   f"{base}:counts")

    def all(self) -> list[str]:
        return [self.waiting, self.in_flight, self.scores, self.verify, self.counts]


def bound_of(per_window: int, window_seconds: float, horizon_seconds: float) -> int:
    """Requests a budget of ``per_window`` per ``window_seconds`` serves within the horizon."""
    return max(1, math.ceil(per_window * horizon_seconds / window_seconds))


# KEYS: waiting, in_flight, verify, counts. ARGV: id, score, bound, counted (1: a hint).
_REQUEST = """
local id, score, bound = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local outcome
local waiting = redis.call('ZSCORE', KEYS[1], id)
if waiting or redis.call('ZSCORE', KEYS[2], id) then
  if waiting and score < tonumber(waiting) then redis.call('ZADD', KEYS[1], score, id) end
  outcome = 'folded'
elseif redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) < bound then
  redis.call('ZADD', KEYS[1], score, id)
  outcome = 'accepted'
else
  redis.call('SET', KEYS[3], '1')
  outcome = 'collapsed'
  local worst = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if worst[1] and math.floor(score / TIER) < math.floor(tonumber(worst[2]) / TIER) then
    redis.call('ZREM', KEYS[1], worst[1])
    redis.call('ZADD', KEYS[1], score, id)
    outcome = 'accepted'
    if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[4], 'collapsed', 1) end
  end
end
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[4], outcome, 1) end
return outcome
""".replace("TIER", str(TIER))

def clock_ms() -> int:
    return int(time.time() * 1000)


async def request(
    redis: Redis, provider: str, account: str, appointment_id: str, *, bound: int,
    known: bool = True, hint: bool = False, now_ms: int | None = None,
) -> Outcome:
    """Queue a fetch of one appointment in its account's lane (one round trip)."""
    keys = LaneKeys.of(provider, account)
    score = (KNOWN if known else UNKNOWN) * TIER + (now_ms if now_ms is not None else clock_ms())
    answer = await redis.eval(  # type: ignore[misc]
        _REQUEST, 4, keys.waiting, keys.in_flight, keys.verify, keys.counts,
        appointment_id, str(score), str(bound), "1" if hint else "0")
    outcome = answer.decode() if isinstance(answer, bytes) else str(answer)
    assert outcome in OUTCOMES, outcome
    return outcome


async def dropped(redis: Redis, provider: str, account: str) -> None:
    """Count a hint no lane takes (its account cannot fetch). Configured accounts only: the
    receiver only calls it for an account a signature or the path named from configuration."""
    await redis.hincrby(LaneKeys.of(provider, account).counts, "dropped", 1)  # type: ignore[misc]


@dataclass(frozen=True)
class LaneFigures:
    """What one lane holds and counted, for the status page and the scrape."""

    waiting: int
    in_flight: int
    verify_soon: bool
    counts: Mapping[str, int]


async def lane_figures(
    redis: Redis, accounts: Iterable[AccountKey],
) -> dict[AccountKey, LaneFigures]:
    """Each account's lane figures, in one pipelined round trip."""
    wanted = list(accounts)
    async with redis.pipeline(transaction=False) as pipe:
        for provider, account in wanted:
            keys = LaneKeys.of(provider, account)
            pipe.zcard(keys.waiting)
            pipe.zcard(keys.in_flight)
            pipe.exists(keys.verify)
            pipe.hgetall(keys.counts)
        answers = await pipe.execute()
    found: dict[AccountKey, LaneFigures] = {}
    for n, key in enumerate(wanted):
        waiting, in_flight, verify, counts = answers[4 * n: 4 * n + 4]
        found[key] = LaneFigures(
            int(waiting), int(in_flight), bool(verify),
            {name: int(counts.get(name.encode(), 0)) for name in OUTCOMES})
    return found




REFETCH_JOB = "refetch_appointment"  # the arq job of releases before lanes: still drained
# arq's job queue (its ``default_queue_name``; the worker names it): the status page counts
# what waits there without importing arq.
JOB_QUEUE = "arq:queue"


def refetch_job_id(provider: str, account: str, appointment_id: str) -> str:
    """The arq job id of a refetch queued by a release before lanes (one per appointment)."""
    return f"refetch:{provider}:{account}:{appointment_id}"


async def request_refetch(
    redis: Redis, provider: str, account: str, appointment_id: str, *,
    bound: int = DEFAULT_BOUND, known: bool = True,
) -> bool:
    """Queue a fetch of one appointment in its account's refetch lane (``worker/lanes.py``);
    False when it adds nothing: one waits or runs already (a request made while that fetch runs
    is folded into it: the fetch is stamped before it asks, and the next sweep repairs what it
    could not see), or the lane is full and the request collapsed into its "verify soon" mark.
    Callers in the worker and the read API name ids the mirror holds (``known``)."""
    return await request(redis, provider, account, appointment_id, bound=bound,
                         known=known) == "accepted"


RUNS_KEPT = 20  # reconcile run ids remembered per account (the status page shows the last few)


def reconcile_runs_key(provider: str, account: str) -> str:
    """A list of the account's latest ``reconcile_runs`` ids, newest first: the table does not
    record whose run it was."""
    return f"meetsync:reconcile_runs:{provider}:{account}"


async def remember_run(redis: Redis, provider: str, account: str, run_id: int) -> None:
    key = reconcile_runs_key(provider, account)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(key, run_id)
        pipe.ltrim(key, 0, RUNS_KEPT - 1)
        await pipe.execute()
