"""The event stream between the receiver and the appliers.

The receiver appends each verified event to a Redis stream (``XADD``: one round trip, durable as
far as Redis persists). Workers read it through a consumer group and acknowledge an entry only
after its event is committed to SQLite, so a worker killed mid-batch leaves its entries pending
for another worker to claim: at-least-once, made harmless by the store's inbox.

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
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from meetsync.events import Event
from meetsync.worker import lanes

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


REFETCH_JOB = "refetch_appointment"  # the arq job of releases before lanes: still drained


def refetch_job_id(provider: str, account: str, appointment_id: str) -> str:
    """The arq job id of a refetch queued by a release before lanes (one per appointment)."""
    return f"refetch:{provider}:{account}:{appointment_id}"


async def request_refetch(
    redis: Redis, provider: str, account: str, appointment_id: str, *,
    bound: int = lanes.DEFAULT_BOUND, known: bool = True,
) -> bool:
    """Queue a fetch of one appointment in its account's refetch lane (``worker/lanes.py``);
    False when it adds nothing: one waits or runs already (a request made while that fetch runs
    is folded into it: the fetch is stamped before it asks, and the next sweep repairs what it
    could not see), or the lane is full and the request collapsed into its "verify soon" mark.
    Callers in the worker and the read API name ids the mirror holds (``known``)."""
    return await lanes.request(redis, provider, account, appointment_id, bound=bound,
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
