"""``meetsync endpoints``: which URL to register with each provider, and how; ``meetsync
endpoints test``: a signed, marked delivery to that URL, followed until the mirror holds it.

The test delivery's appointment is each provider's ``SELFTEST_APPOINTMENT_ID`` (docs/providers.md,
"Registering endpoints"): downstream readers recognise it and ignore it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import click

from meetsync.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    print_json,
    runtime,
)
from meetsync.settings import Account, Settings, SettingsError

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_PLACEHOLDER = "https://YOUR-PUBLIC-HOST"
SEND_TIMEOUT_SECONDS = 10.0


def _public(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("must be an http(s):// URL", param_hint="--public-url")
    return url.rstrip("/")


@dataclass(frozen=True)
class _Target:
    provider: str
    account: Account
    url: str | None  # None: the provider sends no webhooks (poll-only)


def _targets(settings: Settings, public: str, only_provider: str | None = None,
             only_account: str | None = None) -> list[_Target]:
    """Each configured account, with the URL its provider must post to."""
    from meetsync.providers import providers

    found = providers()
    if only_provider is not None and only_provider not in found:
        raise SettingsError(f"--provider: no provider {only_provider!r} "
                            f"(known: {', '.join(found)})")
    targets = []
    for name, provider in found.items():
        accounts = settings.accounts_of(name)
        if only_provider not in (None, name) or not accounts:
            continue
        receives = provider.webhooks(accounts) is not None
        for account in accounts:
            if only_account not in (None, account.name):
                continue
            # One account: the short form; several: each its own path (either is verified
            # against every account's secret, the account path also names whose API to ask).
            path = (f"/webhooks/{name}" if len(accounts) == 1
                    else f"/webhooks/{name}/{account.name}")
            targets.append(_Target(name, account, public + path if receives else None))
    if not targets:
        raise SettingsError("no provider account configured" + (
            " matching --provider/--account" if only_provider or only_account else
            " (set e.g. SAVVYCAL_WEBHOOK_SECRET, or accounts in MEETSYNC_CONFIG)"))
    return targets


@click.group(invoke_without_command=True)
@click.option("--public-url", default=_PLACEHOLDER, show_default=True,
              envvar="MEETSYNC_PUBLIC_URL",
              help="Where the providers reach `meetsync serve` [env: MEETSYNC_PUBLIC_URL].")
@_JSON
@click.pass_context
def endpoints(ctx: click.Context, public_url: str, as_json: bool) -> int | None:
    """The webhook URL to register with each configured provider account, and the steps."""
    if ctx.invoked_subcommand is not None:
        return None
    from meetsync.providers import providers

    settings = runtime().settings(find_dev=True)
    found = providers()
    rows: list[dict[str, Any]] = []
    for target in _targets(settings, _public(public_url)):
        steps = (found[target.provider].setup_steps(target.account, target.url)
                 if target.url else ["Poll-only: this provider sends no webhooks; nothing to "
                                     "register (the worker sweeps it)."])
        rows.append({"provider": target.provider, "account": target.account.name,
                     "url": target.url, "webhooks": target.url is not None, "steps": steps})
    if as_json:
        print_json(rows)
        return EXIT_OK
    for row in rows:
        click.echo(f"{row['provider']} (account {row['account']}): {row['url'] or 'poll-only'}")
        for number, step in enumerate(row["steps"], 1):
            click.echo(f"  {number}. {step}")
    return EXIT_OK


@endpoints.command("test")
@click.option("--public-url", required=True, envvar="MEETSYNC_PUBLIC_URL",
              help="Where the providers reach `meetsync serve` [env: MEETSYNC_PUBLIC_URL].")
@click.option("--provider", help="Only this provider.")
@click.option("--account", help="Only this account.")
@click.option("--wait", type=click.FloatRange(0.5, 300), default=15.0, show_default=True,
              help="Seconds to wait for the worker to apply the test delivery.")
@_JSON
def test(public_url: str, provider: str | None, account: str | None, wait: float,
         as_json: bool) -> int:
    """Send a signed, marked test delivery to each endpoint and confirm it was verified,
    queued and applied (read back through the read API, else the local mirror).

    Exit 0 when every one arrived, 1 when one was refused or not applied in time, 3 when a
    selected account has no webhook secret, 4 when the URL or the server's queue is
    unavailable."""
    settings = runtime().settings(find_dev=True)
    results = [_selftest(settings, target, wait)
               for target in _targets(settings, _public(public_url), provider, account)
               if target.url is not None or provider is not None]
    if as_json:
        print_json([{k: v for k, v in r.items() if k != "code"} for r in results])
    else:
        for r in results:
            mark = "ok" if r["code"] == EXIT_OK else "FAILED"
            click.echo(f"{r['provider']} (account {r['account']}): {mark} [{r['stage']}]: "
                       f"{r['detail']}")
    return max((r["code"] for r in results), default=EXIT_OK)


def _selftest(settings: Settings, target: _Target, wait: float) -> dict[str, Any]:
    import httpx

    from meetsync.providers import providers

    def result(code: int, stage: str, detail: str) -> dict[str, Any]:
        return {"provider": target.provider, "account": target.account.name, "url": target.url,
                "ok": code == EXIT_OK, "stage": stage, "detail": detail, "code": code}

    if target.url is None:
        return result(EXIT_OK, "skipped", "poll-only: no webhooks to test")
    delivery = providers()[target.provider].selftest(target.account, datetime.now(UTC))
    if delivery is None:
        return result(EXIT_CONFIG, "config", "no webhook secret configured for this account")
    try:
        response = httpx.post(target.url, content=delivery.body, headers=dict(delivery.headers),
                              timeout=SEND_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return result(EXIT_UNAVAILABLE, "unreachable",
                      f"{target.url} did not answer ({type(exc).__name__})")
    status = response.status_code
    refused = {
        401: (EXIT_FAILED, "signature", "refused the signature (401): the server's secret "
                                        "differs from this account's, or it has none"),
        404: (EXIT_FAILED, "not_served", "404: the server does not serve this provider "
                                         "(no account configured there) or the URL is wrong"),
        400: (EXIT_FAILED, "envelope", "verified but refused the envelope (400)"),
        413: (EXIT_FAILED, "envelope", "refused the body as too large (413)"),
        503: (EXIT_UNAVAILABLE, "queue", "the server's queue (Redis) is unavailable (503)"),
    }
    if status in refused:
        return result(*refused[status])
    if status not in (200, 202):
        return result(EXIT_FAILED, "http", f"unexpected answer {status} (is this meetsync?)")
    return _wait_applied(settings, target, delivery.appointment_id, delivery.occurred_at,
                         wait, result)


def _wait_applied(settings: Settings, target: _Target, appointment_id: str, version: int,
                  wait: float, result: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Poll the read API (at the public URL) or else the local mirror for the test meeting."""
    import httpx

    assert target.url is not None
    root = target.url.split("/webhooks/", 1)[0]
    read_url = f"{root}/v1/{target.provider}/appointments/{appointment_id}/meeting"
    deadline = time.monotonic() + wait
    where = "read API" if settings.read_token else "local mirror"
    if not settings.read_token and not _local(settings):
        return result(EXIT_OK, "queued", "verified and queued; set MEETSYNC_READ_TOKEN (or "
                                         "MEETSYNC_DB) to confirm it is applied")
    while True:
        if settings.read_token:
            try:
                answer = httpx.get(read_url, timeout=SEND_TIMEOUT_SECONDS,
                                   headers={"authorization": f"Bearer {settings.read_token}"})
            except httpx.HTTPError as exc:
                return result(EXIT_UNAVAILABLE, "unreachable",
                              f"the read API did not answer ({type(exc).__name__})")
            if answer.status_code == 401:
                return result(EXIT_FAILED, "read_token", "verified and queued, but the read "
                                                         "API refused MEETSYNC_READ_TOKEN")
            seen = answer.json().get("source_version_us") if answer.status_code == 200 else None
        else:
            seen = _local_version(settings, target.provider, appointment_id)
        if isinstance(seen, int) and seen >= version:
            return result(EXIT_OK, "applied",
                          f"verified, queued and applied (read back through the {where})")
        if time.monotonic() >= deadline:
            return result(EXIT_FAILED, "worker",
                          f"verified and queued, but not applied within {wait:g}s: "
                          "is the worker running?")
        time.sleep(0.2)


def _local(settings: Settings) -> bool:
    from pathlib import Path

    return "://" not in settings.db_path and Path(settings.db_path).exists()


def _local_version(settings: Settings, provider: str, appointment_id: str) -> int | None:
    from meetsync.store import open_store

    with open_store(settings.db_path, readonly=True) as store:
        found = store.current_meeting(appointment_id, provider=provider)
    return found["source_version_us"] if found else None


__all__ = ["endpoints"]
