"""The arq worker: the applier draining the event stream, plus jobs and crons.

arq runs the scheduled and on-demand work (credential purge, refetches, the reconciler); the
applier runs beside it in the same process as a long-lived task, because draining a stream in
batches is what makes SQLite fast (one commit per batch, not per event).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import structlog
from arq import cron
from arq.connections import RedisSettings

from meetsync.settings import Settings
from store import open_store
from worker.applier import Applier, StoreThread

log = structlog.get_logger(__name__)


@dataclass
class WorkerContext:
    """What every job gets, typed (arq's ``ctx`` is an untyped dict)."""

    settings: Settings
    store: StoreThread
    applier: Applier
    applier_task: asyncio.Task[None]

    @classmethod
    def of(cls, ctx: dict[str, Any]) -> WorkerContext:
        state: WorkerContext = ctx["meetsync"]
        return state


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    store = StoreThread(lambda: open_store(settings.db_path))
    applier = Applier(ctx["redis"], store)
    await applier.ensure_group()
    task = asyncio.create_task(applier.run(), name="meetsync-applier")
    ctx["meetsync"] = WorkerContext(settings, store, applier, task)
    log.info("worker_started", db=settings.db_path)


async def shutdown(ctx: dict[str, Any]) -> None:
    state = ctx.get("meetsync")
    if state is None:
        return
    state.applier.stop()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await asyncio.wait_for(state.applier_task, timeout=5)
        except TimeoutError:
            state.applier_task.cancel()
    state.store.close()
    log.info("worker_stopped")


async def purge_credentials(ctx: dict[str, Any]) -> int:
    """Clear host_url/password of appointments that ended over 24 h ago (seeds/001)."""
    purged = await WorkerContext.of(ctx).store.run(lambda store: store.purge_expired_credentials())
    if purged:
        log.info("credentials_purged", meetings=purged)
    return purged


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq settings; poll fast and read many jobs per poll (a default worker tops at ~200/s)."""
    return {
        "functions": [],
        "cron_jobs": [cron(purge_credentials, second=0, run_at_startup=True)],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.require_redis()),
        "ctx": {"settings": settings},
        "poll_delay": 0.05,
        "queue_read_limit": 500,
        "max_jobs": 20,
        "job_timeout": 600,
        "keep_result": 60,
    }
