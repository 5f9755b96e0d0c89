"""One frozen settings object, built once at start-up (``meetsync.config.load_settings``), and
the keys it is built from (``Key``: data each provider declares in its own ``config.py``).

Core settings are fields; what belongs to a provider lives in its accounts: ``Account`` holds
one account's validated keys (webhook secrets, API token, request budget...) as its provider
declares them (``meetsync/providers/<name>/config.py``). Several accounts per provider may be
configured; the account built from the single-account environment variables is ``default``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

from meetsync.errors import SettingsError

Kind = Literal["text", "url", "secrets", "int", "path", "db", "list"]
Registry = Mapping[str, tuple["Key", ...]]
"""Each provider's keys, by provider name (``meetsync.providers.keys.PROVIDER_KEYS``)."""


@dataclass(frozen=True)
class Key:
    """One setting: its name in the file, its environment variable, and how to check it."""

    name: str
    env: str | None = None
    kind: Kind = "text"
    secret: bool = False
    default: object = None
    prefix: str = ""  # secrets: each must start with it
    schemes: tuple[str, ...] = ("http", "https")  # url
    minimum: int = 1  # int
    maximum: int | None = None  # int
    choices: tuple[str, ...] = ()  # text, case-insensitive, stored upper-case
    webhook: bool = False  # a secret that verifies webhook deliveries
    # set only together with these keys (credentials that work only as a whole)
    together: tuple[str, ...] = ()


@dataclass(frozen=True)
class Account:
    """One account of one provider: its keys, validated, with their defaults filled in."""

    provider: str
    name: str
    values: Mapping[str, object] = field(default_factory=dict, hash=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.name)

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        return value if isinstance(value, str) and value else None

    def secrets(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key)
        return tuple(value) if isinstance(value, tuple) else ()

    def texts(self, key: str) -> tuple[str, ...]:
        """A ``list`` key's items (none when unset)."""
        return self.secrets(key)

    def number(self, key: str) -> int:
        value = self.values.get(key)
        if not isinstance(value, int):
            raise KeyError(f"{self.provider} account {self.name!r} has no number {key!r}")
        return value


ENTITIES = ("appointment", "meeting", "participant", "occurrence")
"""What the change log records a change of; a subscriber's ``types`` names some of them."""


@dataclass(frozen=True)
class Subscriber:
    """One downstream app the worker pushes the change log to, signed per Standard Webhooks
    (``worker/subscribers.py``). Empty ``providers``/``accounts``/``types``: every one."""

    name: str
    url: str = field(repr=False)  # may carry a token in its path or query
    secrets: tuple[str, ...] = field(default=(), repr=False)  # whsec_..., one signature each
    providers: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def wants(self, provider: str, account: str | None, entity: str) -> bool:
        """Whether a change of ``entity`` of this provider and account is for this subscriber
        (a change whose account is unknown passes an ``accounts`` filter only when empty)."""
        return ((not self.providers or provider in self.providers)
                and (not self.accounts or account in self.accounts)
                and (not self.types or entity in self.types))

    @property
    def gets_credentials(self) -> bool:
        """``host_url`` and ``password`` travel only over TLS, or to this machine (a developer's
        receiver): anywhere else a delivery carries them as null."""
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            return True
        host = parts.hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def shown_url(self) -> str:
        """The URL without what may be secret in it (user info, path, query): for logs, the
        CLI and the status page."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}/…"


@dataclass(frozen=True)
class Settings:
    """Everything configurable: the core settings and every provider account."""

    db_path: str = "./meetsync.db"
    redis_url: str | None = field(default=None, repr=False)  # may carry a password
    # The event stream's Redis (REDIS_URL when unset; redis+cluster:// for a cluster) and its
    # partitions (worker/queue.py). arq's jobs stay on REDIS_URL: arq needs one server.
    queue_url: str | None = field(default=None, repr=False)
    queue_partitions: int = 1
    read_token: str | None = field(default=None, repr=False)
    reconcile_interval_seconds: int = 300
    claim_idle_ms: int = 30_000
    batch_size: int = 5_000
    clock_skew_seconds: int = 300
    # Refreshable credentials (Zoom's start_url): kept fresh for meetings starting within the
    # window (and those in progress), refetched once they would die within the margin; a read
    # asking for a fresh one waits at most refresh_wait_seconds.
    refresh_window_seconds: int = 86_400
    refresh_margin_seconds: int = 900
    refresh_wait_seconds: int = 5
    # A refetch lane holds at most what its account's budget serves within this (worker/lanes.py).
    refetch_horizon_seconds: int = 300
    port: int = 8000
    # GET /metrics asks for this bearer token when set (open otherwise, as scrapes usually are);
    # a worker serves its metrics on worker_metrics_port when set (off otherwise).
    metrics_token: str | None = field(default=None, repr=False)
    worker_metrics_port: int | None = None
    log_level: str = "INFO"
    accounts: tuple[Account, ...] = ()
    # Deliveries to subscribers (worker/subscribers.py): the first retry's delay (doubling, with
    # jitter, up to the maximum), how long one change is retried before it is dead-lettered
    # (the change log is kept longer: it is never pruned), one request's timeout, and the lease
    # a worker holds a subscriber under (taken over this long after its worker died).
    subscribers: tuple[Subscriber, ...] = ()
    subscriber_backoff_ms: int = 1000
    subscriber_backoff_max_seconds: int = 3600
    subscriber_retry_seconds: int = 86_400
    subscriber_timeout_seconds: int = 10
    subscriber_lease_seconds: int = 30

    def subscriber(self, name: str) -> Subscriber | None:
        return next((s for s in self.subscribers if s.name == name), None)

    def account(self, provider: str, name: str = "default") -> Account | None:
        return next((a for a in self.accounts if a.key == (provider, name)), None)

    def accounts_of(self, provider: str) -> tuple[Account, ...]:
        return tuple(a for a in self.accounts if a.provider == provider)

    def with_account(self, account: Account) -> Settings:
        """These settings with ``account`` added, or in place of the one with its key."""
        others = tuple(a for a in self.accounts if a.key != account.key)
        return replace(self, accounts=(*others, account))

    def require_redis(self) -> str:
        if not self.redis_url:
            raise SettingsError("REDIS_URL must be set (or use `meetsync dev`)")
        return self.redis_url

    def require_queue(self) -> str:
        """The event stream's Redis: ``MEETSYNC_QUEUE_URL``, else ``REDIS_URL``."""
        return self.queue_url or self.require_redis()


__all__ = [
    "ENTITIES", "Account", "Key", "Registry", "Settings", "SettingsError", "Subscriber",
]
