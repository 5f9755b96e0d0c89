"""The event stream between the receiver and the appliers.

The receiver appends each verified event to one Redis stream (``XADD``: one round trip, durable as
far as Redis persists). Workers read it through a consumer group and acknowledge an entry only
after its event is committed to SQLite, so a worker killed mid-batch leaves its entries pending
for another worker to claim: at-least-once, made harmless by the store's inbox.
"""

from __future__ import annotations

from arq.connections import ArqRedis
from redis.asyncio import Redis

from meetsync.events import Event

EVENT_STREAM = "meetsync:events"
GROUP = "appliers"
STATS = "meetsync:stats"
FIELD = b"e"


async def publish(redis: Redis, event: Event) -> None:
    """Durably queue one event (returns once Redis has it)."""
    await redis.xadd(EVENT_STREAM, {FIELD: event.to_json()})


async def count(redis: Redis, name: str, amount: int = 1) -> None:
    """Bump one of the pipeline's counters (``meetsync stats`` shows them)."""
    await redis.hincrby(STATS, name, amount)  # type: ignore[misc]


REFETCH_JOB = "refetch_appointment"


def refetch_job_id(provider: str, account: str, appointment_id: str) -> str:
    """One queued refetch per appointment: asking again while one waits adds nothing."""
    return f"refetch:{provider}:{account}:{appointment_id}"


async def request_refetch(
    redis: Redis, provider: str, account: str, appointment_id: str
) -> bool:
    """Queue a fetch of one appointment from its provider's API (an arq job); False when one
    is already waiting. A request made while that fetch runs is folded into it: the fetch is
    stamped before it asks, and the next sweep repairs what it could not see."""
    arq = redis if isinstance(redis, ArqRedis) else ArqRedis(connection_pool=redis.connection_pool)
    job = await arq.enqueue_job(
        REFETCH_JOB, provider, account, appointment_id,
        _job_id=refetch_job_id(provider, account, appointment_id),
    )
    return job is not None


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
