"""The event stream between the receiver and the appliers.

The receiver appends each verified event to one Redis stream (``XADD``: one round trip, durable as
far as Redis persists). Workers read it through a consumer group and acknowledge an entry only
after its event is committed to SQLite, so a worker killed mid-batch leaves its entries pending
for another worker to claim: at-least-once, made harmless by the store's inbox.
"""

from __future__ import annotations

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
