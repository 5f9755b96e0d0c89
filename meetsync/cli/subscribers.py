"""``meetsync subscribers list | test NAME | enable NAME | replay NAME --since SEQ |
dead-letters [NAME]``: the downstream apps the worker pushes the change log to
(``worker/subscribers.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from meetsync.cli._common import EXIT_FAILED, open_mirror, print_json, runtime
from meetsync.metrics import lag_seconds
from meetsync.settings import Settings, Subscriber
from meetsync.store import subscribers as cursors


@click.group("subscribers")
def subscribers() -> None:
    """Subscribers: the signed deliveries of the change log (docs/mirror.md, "Subscribers")."""


def _configured(settings: Settings, name: str) -> Subscriber:
    found = settings.subscriber(name)
    if found is None:
        known = ", ".join(s.name for s in settings.subscribers) or "none"
        raise click.ClickException(f"no subscriber named {name!r} is configured ({known})")
    return found


def _state(cursor: dict[str, Any] | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    return {
        "seq": cursor["seq"], "lag_seq": cursor.get("lag_seq"),
        "lag_seconds": round(lag_seconds(cursor.get("oldest_changed_at")), 3),
        "sent": cursor["sent"], "failed_attempts": cursor["failed"],
        "dead_letters": cursor["dead"], "failing_attempts": cursor["attempts"],
        "last_error": cursor["last_error"], "disabled_at": cursor["disabled_at"],
        "disabled_reason": cursor["disabled_reason"],
    }


@subscribers.command("list")
def list_() -> int:
    """Print each configured subscriber (its URL shortened: it may hold a token), its filters,
    and its delivery state in the mirror, as JSON."""
    settings = runtime().settings(find_dev=True)
    states: dict[str, Any] = {}
    if settings.subscribers:
        store = open_mirror(settings)
        try:
            states = {c["name"]: c for c in cursors.cursors(store)}
        finally:
            store.close()
    print_json([{
        "name": s.name, "url": s.shown_url, "credentials": s.gets_credentials,
        "providers": list(s.providers), "accounts": list(s.accounts), "types": list(s.types),
        "secrets": len(s.secrets), "state": _state(states.get(s.name)),
    } for s in settings.subscribers])
    return 0


@subscribers.command("test")
@click.argument("name")
def test(name: str) -> int:
    """Send NAME one signed ``meetsync.test`` delivery; when it answers 2xx and a 410 had
    disabled it, deliveries resume (from its cursor). Exit 1 when it does not answer 2xx."""
    from meetsync.worker.subscribers import send_test

    settings = runtime().settings(find_dev=True)
    subscriber = _configured(settings, name)
    result = asyncio.run(send_test(subscriber,
                                   timeout_seconds=settings.subscriber_timeout_seconds))
    if not result.ok:
        click.echo(f"{name}: {result.error or 'failed'} from {subscriber.shown_url}", err=True)
        return EXIT_FAILED
    enabled = _enable(settings, name)
    click.echo(f"{name}: the test delivery was accepted{'; re-enabled' if enabled else ''}")
    return 0


def _enable(settings: Settings, name: str) -> bool:
    store = open_mirror(settings, readonly=False)
    try:
        return cursors.enable(store, name)
    finally:
        store.close()


@subscribers.command("enable")
@click.argument("name")
def enable(name: str) -> int:
    """Resume deliveries to NAME after a 410 disabled it (without testing it first)."""
    settings = runtime().settings(find_dev=True)
    _configured(settings, name)
    click.echo(f"{name}: {'re-enabled' if _enable(settings, name) else 'was not disabled'}")
    return 0


@subscribers.command("replay")
@click.argument("name")
@click.option("--since", type=click.IntRange(min=0), required=True,
              help="Deliver again every change after this sequence number (or skip to it).")
def replay(name: str, since: int) -> int:
    """Move NAME's cursor to SEQ: the worker delivers every change after it again, in order
    (a subscriber dedupes by webhook-id); a higher SEQ skips ahead."""
    settings = runtime().settings(find_dev=True)
    _configured(settings, name)
    store = open_mirror(settings, readonly=False)
    try:
        cursors.rewind(store, name, since)
        head = cursors.head(store)
    finally:
        store.close()
    click.echo(f"{name}: delivering changes {since + 1}..{head} again" if head > since
               else f"{name}: cursor at {since}, nothing after it yet")
    return 0


@subscribers.command("dead-letters")
@click.argument("name", required=False)
def dead_letters(name: str | None) -> int:
    """Print the changes given up on after the retry horizon (NAME's, or every
    subscriber's), as JSON: ``replay --since`` delivers them again."""
    settings = runtime().settings(find_dev=True)
    store = open_mirror(settings)
    try:
        print_json(cursors.dead_letters(store, name))
    finally:
        store.close()
    return 0


__all__ = ["subscribers"]
