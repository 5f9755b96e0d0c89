"""Commands that talk to the provider: ``reconcile``, ``backfill``, ``dead-letters replay``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
import structlog

from meetsync.cli._common import mirror_path, print_json, require, runtime
from meetsync.cli.progress import reporter
from meetsync.settings import Settings

log = structlog.get_logger(__name__)


@click.command()
@click.option("--once", is_flag=True, help="One run, print its summary (the only mode; default).")
@click.option("--all", "sweep_all", is_flag=True,
              help="Sweep every appointment, not only upcoming and recently ended ones.")
def reconcile(once: bool, sweep_all: bool) -> int:
    """Compare the mirror with the provider's API and repair it; print the run's summary as
    JSON. Exit 1 unless the run is a success."""
    settings = runtime().settings(find_dev=True)
    require(settings, api_token=True)
    return asyncio.run(_reconcile(settings, "all" if sweep_all else "window", None))


@click.command()
@click.option("--since", metavar="ISO", help="Appointments starting at or after this (ISO-8601).")
@click.option("--until", metavar="ISO", help="Appointments starting before this (ISO-8601).")
def backfill(since: str | None, until: str | None) -> int:
    """Load every appointment the provider has (or those starting in a window)."""
    settings = runtime().settings(find_dev=True)
    require(settings, api_token=True)
    filters = [
        {"field": "start_at", "op": op, "value": value}
        for op, value in ((">=", since), ("<", until)) if value
    ]
    return asyncio.run(_reconcile(settings, "all", filters or None))


async def _reconcile(settings: Settings, scope: str, filters: list[dict[str, Any]] | None) -> int:
    from meetsync.store import open_store
    from meetsync.worker.applier import StoreThread
    from meetsync.worker.main import api_client
    from meetsync.worker.reconciler import Reconciler

    store = StoreThread(lambda: open_store(settings.db_path))
    try:
        with reporter() as progress:
            async with api_client(settings) as client:
                reconciler = Reconciler(client, store, scope=scope,  # type: ignore[arg-type]
                                        filters=filters, progress=progress)
                report = await reconciler.run()
    finally:
        store.close()
    print_json(report.summary())
    return 0 if report.outcome == "success" else 1


@click.command()
@click.argument("letter", metavar="[ID]", type=int, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every letter awaiting replay.")
def replay(letter: int | None, replay_all: bool) -> int:
    """Refetch each letter's appointment from the provider, apply it, mark the letter replayed.

    Give one dead letter's ID, or --all. Prints the outcomes as JSON; exit 1 if any is left.
    """
    if (letter is None) == (not replay_all):
        raise click.UsageError("give one dead letter's ID, or --all")
    settings = runtime().settings(find_dev=True)
    require(settings, api_token=True)
    mirror_path(settings)
    return asyncio.run(_replay_dead_letters(settings, None if replay_all else letter))


async def _replay_dead_letters(settings: Settings, letter_id: int | None) -> int:
    """Refetch each letter's appointment (the provider's word now, not the old payload), apply
    it through the guarded path, and mark the letter replayed."""
    from meetsync.store import open_store
    from meetsync.worker.main import api_client

    store = open_store(settings.db_path)
    try:
        if letter_id is None:
            letters = store.dead_letters()
        else:
            found = store.dead_letter(letter_id)
            if found is None:
                click.echo(f"dead letter {letter_id} not found", err=True)
                return 1
            letters = [found]
        async with api_client(settings) as client:
            results = [await _replay_one(store, client, letter) for letter in letters]
    finally:
        store.close()
    print_json(results)
    return 0 if all(r["outcome"] in ("replayed", "already replayed") for r in results) else 1


async def _replay_one(store: Any, client: Any, letter: dict[str, Any]) -> dict[str, Any]:
    from meetsync.providers.savvycal.client import ApiError
    from meetsync.store import StoreBusy
    from meetsync.worker.main import refetch

    result: dict[str, Any] = {"id": letter["id"], "event_id": letter["event_id"],
                              "appointment_id": letter["appointment_id"]}
    if letter["replayed_at"] is not None:
        return {**result, "outcome": "already replayed"}
    if not letter["appointment_id"]:
        return {**result, "outcome": "skipped", "reason": "no appointment id to refetch"}
    event_id = f"replay:{letter['id']}:{time.time_ns() // 1000}"
    held = store.appointment(letter["appointment_id"])
    times = (held["start_at"], held["end_at"]) if held else (None, None)
    try:
        event = await refetch(client, letter["appointment_id"], event_id, keep_times=times)
        _, failures = store.apply([event])
    except (ApiError, StoreBusy) as exc:
        return {**result, "outcome": "failed", "reason": str(exc)}
    if failures:
        return {**result, "outcome": "failed", "reason": failures[0].reason}
    store.mark_replayed(letter["id"])
    log.info("dead_letter_replayed", dead_letter=letter["id"], event_id=letter["event_id"])
    return {**result, "outcome": "replayed", "type": event.type}
