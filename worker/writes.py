"""The one entry point for snapshots the worker fetched itself (refetches, reconcile repairs).

They are written through the store's guarded ``apply`` at once (a read waiting on
``?fresh=true`` or a sweep counting its repairs sees them written), like a batch of the
applier's. A snapshot that fails *on its own* is not reported as written, nor merely logged:
it is handed to the applier by publishing it onto the event stream, so it takes the exact path
of a webhook's event (retried by redelivery, after ``max_attempts`` dead-lettered with its
credentials redacted, counted in ``meetsync:stats`` and the applier's metrics). One
dead-letter policy for every write.

Without an event stream (``meetsync reconcile`` run by hand) a failure is logged and returned
to the caller, which reports it (the run's errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import structlog

from meetsync.events import Event
from meetsync.queue import STATS, QueueClient, publish
from meetsync.store import ApplyResult, Failure, Store
from meetsync.worker.applier import StoreThread

log = structlog.get_logger(__name__)

CHUNK = 1000  # events per transaction, as the applier's batches
HANDED_OVER = "snapshots_failed"  # meetsync:stats field: failed snapshots given to the applier


class SnapshotWriter:
    """Writes fetched snapshots; hands the ones that fail on their own to the applier."""

    def __init__(
        self, store: StoreThread, queue: QueueClient | None = None, *, partitions: int = 1
    ) -> None:
        self.store = store
        self.queue = queue
        self.partitions = partitions

    async def write(self, events: Sequence[Event]) -> tuple[ApplyResult, list[Failure]]:
        """Apply ``events``; returns what was applied and what failed on its own (already
        queued for the applier's retries when there is a stream)."""
        total, failures = ApplyResult(), []
        for start in range(0, len(events), CHUNK):
            result, failed = await self.store.run(
                partial(_apply, events=list(events[start:start + CHUNK])))
            total.add(result)
            failures += failed
        if failures:
            await self._hand_over(failures)
        return total, failures

    async def _hand_over(self, failures: list[Failure]) -> None:
        for failure in failures:
            log.warning("snapshot_failed", event_id=failure.event.id, type=failure.event.type,
                        provider=failure.event.provider, reason=failure.reason[:200],
                        next="the applier retries it" if self.queue is not None else "none")
        if self.queue is None:
            return
        for failure in failures:
            await publish(self.queue, failure.event, self.partitions)
        await self.queue.hincrby(STATS, HANDED_OVER, len(failures))  # type: ignore[misc]


def _apply(store: Store, events: list[Event]) -> tuple[ApplyResult, list[Failure]]:
    return store.apply(events)
