"""What every command shares: exit codes, the settings (loaded on first use), output. The
errors each exit code stands for: ``meetsync/cli/errors.py``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson

from meetsync.cli.errors import SettingsError, Unavailable
from meetsync.config import Registry, caller_dir, user_path
from meetsync.settings import Account, Settings

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and failed, or found nothing
EXIT_USAGE = 2  # click's own
EXIT_CONFIG = 3
EXIT_UNAVAILABLE = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = """\b
Exit codes:
  0    success
  1    the operation ran and failed, or found nothing
  2    usage error
  3    configuration invalid (every problem is listed)
  4    a dependency unavailable (Redis, the mirror file, a second `dev`)
  130  interrupted"""


@dataclass
class Runtime:
    """The command line's shared state: settings are loaded (and validated) on first use, so
    ``--help`` works whatever the environment holds."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _settings: Settings | None = None

    def settings(self, *, find_dev: bool = False) -> Settings:
        """The settings; with ``find_dev``, a running ``meetsync dev``'s Redis and mirror fill
        in ``REDIS_URL`` and ``MEETSYNC_DB`` when they are unset."""
        if self._settings is None:
            from meetsync.config import load_settings
            from meetsync.log import configure

            self._settings = load_settings(self.env, registry())
            configure(self._settings.log_level)
        settings = self._settings
        if find_dev:
            settings = self._with_dev_stack(settings)
        return settings

    def _with_dev_stack(self, settings: Settings) -> Settings:
        from meetsync.cli.devstate import DevState, apply_running

        running = DevState(self.data_dir).running()
        if running is None:
            return settings
        click.echo(f"meetsync: using the running `meetsync dev` ({self.data_dir / 'dev.json'})",
                   err=True)
        return apply_running(settings, running, str(caller_dir(self.env) / "meetsync.db"))


def registry() -> Registry:
    """Every provider's keys (imported on use: a provider package is slow to import, and
    ``--help`` needs none)."""
    from meetsync.providers.keys import PROVIDER_KEYS

    return PROVIDER_KEYS


def runtime() -> Runtime:
    return click.get_current_context().find_object(Runtime) or Runtime(user_path(".meetsync"))


def require(settings: Settings, *, redis: bool = False, read_token: bool = False,
            webhook_secret: bool = False, api_token: bool = False) -> None:
    """Check everything a command needs before it starts; report every gap at once."""
    problems = []
    if redis and not settings.redis_url:
        problems.append("REDIS_URL must be set (or run `meetsync dev` beside this command)")
    if read_token and not settings.read_token:
        problems.append("MEETSYNC_READ_TOKEN must be set")
    if webhook_secret and not _poll_only(settings) and not any(
            _receives(settings, account) for account in settings.accounts):
        names = [key.env for keys in registry().values() for key in keys
                 if key.webhook and key.env]
        problems.append(f"a webhook secret must be set: {' or '.join(names)}, "
                        "or an account's in MEETSYNC_CONFIG")
    if api_token:
        problems += _missing_api(settings)
    if problems:
        raise SettingsError(*problems)


def _receives(settings: Settings, account: Account) -> bool:
    """Whether the receiver can accept deliveries for ``account``: it has a webhook secret, or
    its provider signs nothing (its deliveries are only hints, checked against its API)."""
    keys = [key for key in registry().get(account.provider, ()) if key.webhook]
    if keys:
        return any(account.secrets(key.name) for key in keys)
    from meetsync.providers import providers

    provider = providers().get(account.provider)
    return provider is not None and provider.webhooks([account]) is not None


def _poll_only(settings: Settings) -> bool:
    """Whether every configured account is of a provider that sends no webhooks at all (poll
    only): the receiver then has nothing to verify and serves the read API alone."""
    from meetsync.providers import providers

    known = providers()
    return bool(settings.accounts) and all(
        account.provider in known and known[account.provider].webhooks([account]) is None
        for account in settings.accounts)


def _missing_api(settings: Settings) -> list[str]:
    """Nothing when some account has API credentials; else what to set for each."""
    from meetsync.providers import providers

    found = providers()
    missing = [found[a.provider].missing_api(a) for a in settings.accounts if a.provider in found]
    if any(what is None for what in missing):
        return []
    if not settings.accounts:  # nothing configured: name the first provider's variable
        from meetsync.providers import LEGACY_PROVIDER
        from meetsync.settings import Account

        missing = [found[LEGACY_PROVIDER].missing_api(Account(LEGACY_PROVIDER, "default"))]
    return [f"{what} must be set" for what in missing]


def mirror_path(settings: Settings) -> Path | str:
    """The mirror's file, or its PostgreSQL URL."""
    from meetsync.store import mirror_exists
    from meetsync.store.postgres import is_postgres

    if is_postgres(settings.db_path):
        return settings.db_path
    path = Path(settings.db_path)
    if not mirror_exists(path):
        raise Unavailable(f"no mirror at MEETSYNC_DB={path}")
    return path


def open_mirror(settings: Settings, *, readonly: bool = True) -> Any:
    from meetsync.store import open_store

    return open_store(mirror_path(settings), readonly=readonly)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextmanager
def redis_errors() -> Iterator[None]:
    """A Redis that does not answer is a dependency unavailable, not a traceback."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unavailable(f"Redis at REDIS_URL does not answer ({type(exc).__name__})") from None


def uvicorn_kwargs() -> dict[str, Any]:
    """httptools + uvloop when installed (about twice plain h11's throughput here)."""
    import contextlib

    kwargs: dict[str, Any] = {"log_config": None, "access_log": False}
    with contextlib.suppress(ImportError):
        import httptools  # noqa: F401

        kwargs["http"] = "httptools"
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        kwargs["loop"] = "uvloop"
    return kwargs
