"""The arq worker: the applier draining the event stream, plus jobs and crons.

arq runs the scheduled and on-demand work (credential purge, refetches, the reconciler); the
applier runs beside it in the same process as a long-lived task, because draining a stream in
batches is what makes SQLite fast (one commit per batch, not per event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from arq import Retry, cron
from arq.connections import ArqRedis, RedisSettings

from meetsync.events import Event, to_micros
from meetsync.providers.savvycal import appointment_event
from meetsync.providers.savvycal.client import (
    PermanentApiError,
    RequestBudget,
    RetryableApiError,
    SavvyCalClient,
)
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.worker.applier import Applier, StoreThread
from meetsync.worker.reconciler import Reconciler

log = structlog.get_logger(__name__)

TIES_LOGGED = 20  # appointment ids named per tie_unresolved line
_TIE_FIX = {
    SavvyCalClient.provider: "set the provider's API token (SAVVYCAL_API_TOKEN) so the worker can"
    " refetch these appointments and settle which of two same-instant snapshots is current",
}


@dataclass
class WorkerContext:
    """What every job gets, typed (arq's ``ctx`` is an untyped dict)."""

    settings: Settings
    redis: ArqRedis
    store: StoreThread
    applier: Applier
    applier_task: asyncio.Task[None]
    client: SavvyCalClient | None

    @classmethod
    def of(cls, ctx: dict[str, Any]) -> WorkerContext:
        state: WorkerContext = ctx["meetsync"]
        return state


def api_client(settings: Settings, budget: RequestBudget | None = None) -> SavvyCalClient:
    """A provider client; pass the process's one budget so every caller shares the rate limit."""
    return SavvyCalClient(
        settings.savvycal_api_url,
        settings.require_api_token(),
        account_id=settings.savvycal_account_id,
        budget=budget or RequestBudget(settings.api_requests_per_minute),
    )


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    redis: ArqRedis = ctx["redis"]
    store = StoreThread(lambda: open_store(settings.db_path))
    client = api_client(settings) if settings.savvycal_api_token else None
    if client is None:
        log.warning("reconciler_disabled", reason="SAVVYCAL_API_TOKEN is not set")

    async def refetch_ties(ties: set[tuple[str, str]]) -> None:
        # Only the client's own provider can be refetched; the rest wait for a newer event.
        served = client.provider if client is not None else None
        unresolved: dict[str, list[str]] = {}
        for provider, appointment_id in sorted(ties):
            if provider == served:
                await redis.enqueue_job(
                    "refetch_appointment", appointment_id, _job_id=f"refetch:{appointment_id}"
                )
            else:
                unresolved.setdefault(provider, []).append(appointment_id)
        for provider, appointment_ids in unresolved.items():
            log.warning(
                "tie_unresolved", provider=provider, count=len(appointment_ids),
                appointments=appointment_ids[:TIES_LOGGED], fix=_TIE_FIX.get(
                    provider, f"no API client refetches {provider} appointments yet: the next"
                    " event for each settles which of two same-instant snapshots is current"),
            )

    applier = Applier(
        redis, store, on_ties=refetch_ties, claim_idle_ms=settings.claim_idle_ms,
        clock_skew_seconds=settings.clock_skew_seconds,
    )
    await applier.ensure_group()
    task = asyncio.create_task(applier.run(), name="meetsync-applier")
    ctx["meetsync"] = WorkerContext(settings, redis, store, applier, task, client)
    log.info("worker_started", db=settings.db_path)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the applier and close the store; safe to call twice."""
    state = ctx.pop("meetsync", None)
    if state is None:
        return
    state.applier.stop()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await asyncio.wait_for(state.applier_task, timeout=5)
        except TimeoutError:
            state.applier_task.cancel()
    if state.client is not None:
        await state.client.aclose()
    state.store.close()
    log.info("worker_stopped")


async def purge_credentials(ctx: dict[str, Any]) -> int:
    """Clear host_url/password of appointments that ended over 24 h ago (seeds/001)."""
    purged = await WorkerContext.of(ctx).store.run(lambda store: store.purge_expired_credentials())
    if purged:
        log.info("credentials_purged", meetings=purged)
    return purged


async def prune_inbox(ctx: dict[str, Any]) -> int:
    """Forget event ids applied over 30 days ago: the inbox would otherwise grow forever."""
    pruned = await WorkerContext.of(ctx).store.run(lambda store: store.prune_inbox())
    if pruned:
        log.info("inbox_pruned", events=pruned)
    return pruned


async def refetch(
    client: SavvyCalClient,
    appointment_id: str,
    event_id: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    keep_times: tuple[str | None, str | None] = (None, None),
) -> Event:
    """The provider's current word on one appointment, as an event (404: deleted).

    Stamped before the request is sent: a webhook for a change made while it is in flight is
    newer and wins. A deleted appointment keeps ``keep_times`` (the mirror's start and end), so
    its credentials still expire and get purged.
    """
    asked_at = to_micros(clock())
    row = await client.get_appointment(appointment_id, priority="refetch")
    if row is None:
        start_at, end_at = keep_times
        return Event(id=event_id, provider="savvycal", type="refetch.gone", occurred_at=asked_at,
                     appointment_id=appointment_id, appointment_status="deleted",
                     start_at=start_at, end_at=end_at, no_meeting=True)
    return appointment_event(row, event_id=event_id, type="refetch", occurred_at=asked_at)


async def refetch_appointment(ctx: dict[str, Any], appointment_id: str) -> str:
    """Load one appointment from the API and write it through the guarded path."""
    state = WorkerContext.of(ctx)
    if state.client is None:
        return "skipped: no SAVVYCAL_API_TOKEN"
    event_id = f"refetch:{ctx['job_id']}:{ctx['job_try']}"
    held = await state.store.run(lambda store: store.appointment(appointment_id))
    times = (held["start_at"], held["end_at"]) if held else (None, None)
    try:
        event = await refetch(state.client, appointment_id, event_id, keep_times=times)
    except RetryableApiError as exc:
        raise Retry(defer=exc.retry_after or 5 * ctx["job_try"]) from exc
    except PermanentApiError as exc:
        log.error("refetch_failed", appointment_id=appointment_id, error=str(exc))
        return "failed"
    await state.store.run(lambda store: store.apply([event]))
    return "applied"


async def reconcile(ctx: dict[str, Any]) -> dict[str, Any]:
    state = WorkerContext.of(ctx)
    if state.client is None:
        return {"outcome": "skipped"}
    # A client of its own (its counters are this run's API calls), on the shared budget.
    async with api_client(state.settings, state.client.budget) as client:
        report = await Reconciler(client, state.store).run()
    return report.summary()


def _every(seconds: int) -> dict[str, Any]:
    """arq cron fields firing about every ``seconds`` (arq schedules by clock fields)."""
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    minutes = max(1, seconds // 60)
    if minutes < 60:
        return {"minute": set(range(0, 60, minutes)), "second": 0}
    return {"hour": set(range(0, 24, max(1, minutes // 60))), "minute": 0, "second": 0}


async def run(settings: Settings) -> None:
    """One worker until a signal stops it; a lost Redis connection propagates to the caller."""
    from arq.worker import create_worker

    worker = create_worker(worker_settings(settings))
    try:
        await worker.async_run()
    except asyncio.CancelledError:  # SIGINT/SIGTERM: arq cancels its main task
        pass
    finally:
        try:
            await worker.close()
        except Exception as exc:  # Redis gone: close() can't clear its health key
            log.warning("worker_close_incomplete", error_type=type(exc).__name__)
            await shutdown(worker.ctx)


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq settings; poll fast and read many jobs per poll (a default worker tops at ~200/s)."""
    return {
        "functions": [refetch_appointment],
        "cron_jobs": [
            cron(purge_credentials, second=0, run_at_startup=True),
            cron(prune_inbox, minute=17, second=0),
            cron(reconcile, **_every(settings.reconcile_interval_seconds), timeout=3600),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.require_redis()),
        "ctx": {"settings": settings},
        "poll_delay": 0.05,
        "queue_read_limit": 500,
        "max_jobs": 20,
        "job_timeout": 600,
        "keep_result": 60,
        "max_tries": 5,
    }
