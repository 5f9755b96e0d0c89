"""Commands that repair the mirror: ``reconcile`` and ``backfill`` (against the provider's
API), ``dead-letters replay`` (events the worker gave up on)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import click
import orjson
import structlog

from meetsync.cli._common import mirror_path, print_json, require, runtime
from meetsync.cli.progress import reporter
from meetsync.providers import Window
from meetsync.settings import Settings

log = structlog.get_logger(__name__)


_ACCOUNT_OPTIONS = (
    click.option("--provider", metavar="NAME", help="Only this provider's accounts."),
    click.option("--account", metavar="NAME", help="Only accounts with this name."),
)


def _accounts(command: Any) -> Any:
    for option in reversed(_ACCOUNT_OPTIONS):
        command = option(command)
    return command


@click.command()
@click.option("--once", is_flag=True, help="One run, print its summary (the only mode; default).")
@click.option("--all", "sweep_all", is_flag=True,
              help="Sweep every appointment, not only upcoming and recently ended ones.")
@_accounts
def reconcile(once: bool, sweep_all: bool, provider: str | None, account: str | None) -> int:
    """Compare the mirror with each account's API and repair it; print each run's summary as
    JSON (one object for one account, a list for several). Exit 1 unless every run is a
    success."""
    settings = runtime().settings(find_dev=True)
    require(settings, api_token=True)
    return asyncio.run(_reconcile(settings, "all" if sweep_all else "window", Window(),
                                  provider, account))


@click.command()
@click.option("--since", metavar="ISO", help="Appointments starting at or after this (ISO-8601).")
@click.option("--until", metavar="ISO", help="Appointments starting before this (ISO-8601).")
@_accounts
def backfill(since: str | None, until: str | None, provider: str | None,
             account: str | None) -> int:
    """Load every appointment the providers have (or those starting in a window)."""
    settings = runtime().settings(find_dev=True)
    require(settings, api_token=True)
    window = Window(starting_from=since, starting_before=until)
    return asyncio.run(_reconcile(settings, "all", window, provider, account))


def _chosen(settings: Settings, provider: str | None, account: str | None) -> list[Any]:
    from meetsync.worker.main import connect

    chosen = [c for (p, a), c in sorted(connect(settings, quiet=True).items())
              if provider in (None, p) and account in (None, a)]
    if not chosen:
        raise click.UsageError("no configured account with API credentials matches"
                               f" --provider {provider or '*'} --account {account or '*'}")
    return chosen


async def _reconcile(settings: Settings, scope: str, window: Window, provider: str | None,
                     account: str | None) -> int:
    from meetsync.store import open_store
    from meetsync.worker.applier import StoreThread
    from meetsync.worker.reconciler import Reconciler

    connections = _chosen(settings, provider, account)
    store = StoreThread(lambda: open_store(settings.db_path))
    summaries = []
    try:
        with reporter() as progress:
            for connection in connections:
                try:
                    report = await Reconciler(
                        connection.api, store, scope=scope,  # type: ignore[arg-type]
                        window=window, horizon=connection.provider.horizon,
                        progress=progress).run()
                finally:
                    await connection.api.aclose()
                summaries.append({"provider": connection.provider.name,
                                  "account": connection.account.name, **report.summary()})
    finally:
        store.close()
    print_json(summaries[0] if len(summaries) == 1 else summaries)
    return 0 if all(s["outcome"] == "success" for s in summaries) else 1


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
    from meetsync.worker.main import connect

    connections = connect(settings, quiet=True)
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
        results = [await _replay_one(store, connections, letter) for letter in letters]
    finally:
        for connection in connections.values():
            await connection.api.aclose()
        store.close()
    print_json(results)
    return 0 if all(r["outcome"] in ("replayed", "already replayed") for r in results) else 1


async def _replay_one(
    store: Any, connections: dict[tuple[str, str], Any], letter: dict[str, Any]
) -> dict[str, Any]:
    from meetsync.providers import ProviderError
    from meetsync.providers.http import ApiError
    from meetsync.store import StoreBusy
    from meetsync.worker.main import refetch

    result: dict[str, Any] = {"id": letter["id"], "event_id": letter["event_id"],
                              "appointment_id": letter["appointment_id"]}
    if letter["replayed_at"] is not None:
        return {**result, "outcome": "already replayed"}
    if not letter["appointment_id"]:
        return {**result, "outcome": "skipped", "reason": "no appointment id to refetch"}
    provider, account = _origin(letter if "payload" in letter
                                else store.dead_letter(letter["id"]) or letter)
    connection = connections.get((provider, account))
    if connection is None:
        return {**result, "outcome": "failed",
                "reason": f"no API credentials for {provider} account {account}"}
    event_id = f"replay:{letter['id']}:{time.time_ns() // 1000}"
    try:
        event = await refetch(connection.api, letter["appointment_id"], event_id)
        _, failures = store.apply([event])
    except (ApiError, ProviderError, StoreBusy) as exc:
        return {**result, "outcome": "failed", "reason": str(exc)}
    if failures:
        return {**result, "outcome": "failed", "reason": failures[0].reason}
    store.mark_replayed(letter["id"])
    log.info("dead_letter_replayed", dead_letter=letter["id"], event_id=letter["event_id"])
    return {**result, "outcome": "replayed", "type": event.type}


def _origin(letter: dict[str, Any]) -> tuple[str, str]:
    """The provider and account of a dead letter's event (its redacted payload says)."""
    from meetsync.providers import LEGACY_PROVIDER

    try:
        payload = orjson.loads(letter.get("payload") or b"{}")
    except orjson.JSONDecodeError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    return (str(payload.get("provider") or LEGACY_PROVIDER),
            str(payload.get("account") or "default"))
