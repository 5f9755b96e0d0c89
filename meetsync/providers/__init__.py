"""The provider seam: everything provider-specific sits behind this small interface.

A provider package (``meetsync/providers/<name>/``) knows its settings, its signature scheme(s)
and any endpoint handshake, its webhook envelope, its API (list, get one, rate limits, errors),
which fields are credentials and when they die, and its simulator. It hands the rest of
meetsync provider-neutral ``Event`` objects. The receiver, the worker, the store and the read
API name no provider; adding one is adding its package and one line in ``PROVIDERS``.

The pieces::

    Provider             one per package: name, settings keys, and factories for
    ├── WebhookProvider  verify + parse deliveries for all its accounts (None: poll-only)
    └── ProviderApi      one account's API client: fetch one appointment, sweep a window

A delivery parses to one of (``Parsed``)::

    Event    a snapshot: queued and applied
    Hint     "this appointment changed": the worker fetches it (unsigned or partial deliveries)
    Reply    an endpoint handshake: answered 200 with this body, nothing queued
    str      an event type we ignore: answered 202 and counted

Errors (the whole tree: ``meetsync/errors.py``)::

    ProviderError
    ├── SignatureError   delivery not verified: answer 401
    ├── EnvelopeError    verified, but not an envelope we understand: answer 400
    └── ApiError         an API call failed (``meetsync.providers.http``)
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from meetsync.errors import ProviderError
from meetsync.events import LEGACY_PROVIDER, Event
from meetsync.queue import bound_of

if TYPE_CHECKING:
    from meetsync.providers.http import Priority, RequestBudget
    from meetsync.settings import Account, Key, Settings

PACKAGES = ("savvycal", "zoom", "avon", "consularia")
"""The provider packages, by name: ``meetsync.providers.<name>`` exposes ``PROVIDER``."""


class SignatureError(ProviderError):
    """Missing or invalid signature, or no secret configured for the scheme used."""


class EnvelopeError(ProviderError):
    """The body is not a valid envelope."""


@dataclass(frozen=True, slots=True)
class Hint:
    """A delivery that only says an appointment changed: the worker fetches it from the API
    (once per appointment however many hints arrive meanwhile). Used where a delivery can't be
    trusted as data (no signature) or carries only part of the object."""

    appointment_id: str
    account: str
    type: str


@dataclass(frozen=True, slots=True)
class Reply:
    """An endpoint handshake: answered 200 with ``body`` as JSON; nothing is queued."""

    body: Mapping[str, Any]


Parsed = Event | Hint | Reply | str  # what a delivery says (not the delivery itself)


@dataclass(frozen=True, slots=True)
class SelfTestDelivery:
    """A signed, marked delivery ``meetsync endpoints test`` posts to a public URL: the
    mirror holds it once ``appointment_id``'s version is at least ``occurred_at`` (µs).
    Each provider documents its test appointment id, for downstream readers to ignore."""

    body: bytes
    headers: Mapping[str, str]
    appointment_id: str
    occurred_at: int


class WebhookProvider(Protocol):
    """What the receiver needs of a provider: one per provider, serving all its accounts."""

    name: str
    signature_headers: tuple[str, ...]
    """The request headers its deliveries may be signed with (the API description lists
    them)."""

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: str | None = None
    ) -> str:
        """The name of the account whose secret signed ``body``; ``SignatureError`` if none.

        ``account`` is the one the delivery was posted to (``POST /webhooks/{provider}/
        {account}``), if any: a provider whose deliveries are unsigned needs it to know whose
        API to ask when it has several accounts; the receiver refuses a delivery signed for
        another account than the one in the path."""

    def parse(self, body: bytes, account: str) -> Parsed:
        """What a verified delivery to ``account`` says. ``EnvelopeError`` if not an envelope."""


@dataclass(frozen=True, slots=True)
class Window:
    """Which appointments a sweep lists; every bound optional (ISO-8601 UTC text)."""

    ending_after: str | None = None
    starting_from: str | None = None
    starting_before: str | None = None

    def admits(self, event: Event) -> bool:
        """Whether a listed appointment lies in the window: for a listing that takes no time
        filter (or a coarser one), applied to each row. An unknown time admits."""
        start, end = moment(event.start_at), moment(event.end_at)
        ending_after, starting_from, starting_before = (
            moment(self.ending_after), moment(self.starting_from), moment(self.starting_before))
        if ending_after and end and end <= ending_after:
            return False
        if starting_from and start and start < starting_from:
            return False
        return not (starting_before and start and start >= starting_before)


def moment(value: object) -> datetime | None:
    """An aware datetime from ISO-8601 text (``Z`` or an offset, ``T`` or a space; naive means
    UTC); None for anything else."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


@dataclass(slots=True)
class SweepPage:
    """One page of a sweep: the snapshots it held, and rows that could not be read.

    ``complete`` False: the listing lacks fields only a fetch of one appointment returns
    (credentials, details): the sweep compares what the snapshots hold and fetches just the
    appointments that drifted, or that the mirror lacks, before repairing.
    """

    events: list[Event]
    errors: list[str] = field(default_factory=list)
    number: int = 1
    of: int | None = None  # pages in all, when the provider says
    complete: bool = True
    unchanged: list[str] = field(default_factory=list)
    """Listed appointments the sweep's ``Unchanged`` check found as the mirror holds them:
    no event was built for them (the page's ``events`` are the rest)."""


Unchanged = Callable[[dict[str, tuple[object, ...]]], Awaitable[Collection[str]]]
"""A sweep's check against the mirror: given listed appointments' snapshot values by id (the
order of ``meetsync.store.mirror.SNAPSHOT_FIELDS``: what the ``Event`` built from the row would
hold there), the ids the mirror already holds exactly so (and no other account owns). A
provider that can read those values cheaply from a listing asks it once a page and builds
events for the other rows only (``SweepPage.unchanged``); one that cannot ignores it."""


class ProviderApi(Protocol):
    """One account's API client, as the worker uses it.

    Every snapshot it returns is stamped (``occurred_at``) just before its request was sent: a
    webhook for a change made while the request was in flight is newer, and wins.
    """

    provider: str
    account: str
    budget: RequestBudget
    calls: int
    retries: int
    rotation: int
    """For listings that lack details (``SweepPage.complete`` False): how many listed
    appointments that look unchanged a sweep also fetches in full, those fetched longest ago
    first, so a change the listing cannot show is found within listed / rotation sweeps."""

    async def fetch(
        self, appointment_id: str, *, event_id: str, type: str, priority: Priority,
        clock: Callable[[], datetime],
    ) -> Event | None:
        """The provider's current word on one appointment; None when it does not know it."""

    def sweep(
        self, window: Window, *, event_id: Callable[[str], str], clock: Callable[[], datetime],
        unchanged: Unchanged | None = None,
    ) -> AsyncIterator[SweepPage]:
        """Every appointment in ``window``, page by page, each id at most once. A sweep that
        may have missed rows moving under its pages sweeps again before it ends.
        ``unchanged``: see ``Unchanged``."""

    async def aclose(self) -> None: ...


class Provider(Protocol):
    """One provider package, as the rest of meetsync sees it."""

    name: str
    keys: tuple[Key, ...]
    horizon: timedelta
    """How long after an appointment ends it still matters to a sweep (its credentials live)."""
    refreshable: bool
    """Whether fetching an appointment again renews its credentials (Zoom's start_url): then
    the worker refetches those about to expire before they are needed."""

    def webhooks(self, accounts: Sequence[Account]) -> WebhookProvider | None:
        """The receiver's half for these accounts; None for a poll-only provider."""

    def budget(self, account: Account) -> RequestBudget:
        """A fresh request budget for the account's token (one per account per process)."""

    def api(self, account: Account, budget: RequestBudget) -> ProviderApi | None:
        """A client for the account; None when the account has no API credentials."""

    def poll_interval(self, account: Account) -> int | None:
        """Seconds between sweeps of this account when the provider sets its own pace (a
        poll-only provider); None: every ``RECONCILE_INTERVAL_SECONDS``."""

    def missing_api(self, account: Account) -> str | None:
        """What to set so ``api`` returns a client (for a log line or an error); None when
        the account has its API credentials."""

    def setup_steps(self, account: Account, url: str) -> list[str]:
        """How to register ``url`` with the provider for ``account`` (a poll-only provider
        says it needs none)."""

    def selftest(self, account: Account, now: datetime) -> SelfTestDelivery | None:
        """A delivery signed with the account's current secret, marked as a test; None when
        the account has no webhook secret (or the provider sends no webhooks)."""


def missing_settings(
    account: Account, keys: Sequence[Key], required: Sequence[str]
) -> str | None:
    """The ``required`` keys ``account`` lacks, named as its user sets them (the variables for
    the ``default`` account, the file's keys for another); None when it has them all."""
    missing = [key for key in keys if key.name in required and not account.text(key.name)]
    if not missing:
        return None
    if account.name == "default":
        return " and ".join(key.env or key.name for key in missing)
    names = ", ".join(key.name for key in missing)
    return f"{names} in [providers.{account.provider}.accounts.{account.name}]"


def providers() -> dict[str, Provider]:
    """Every provider package, by name."""
    found: dict[str, Provider] = {}
    for name in PACKAGES:
        module = importlib.import_module(f"meetsync.providers.{name}")
        found[name] = module.PROVIDER
    return found


def webhook_providers(settings: Settings) -> dict[str, WebhookProvider]:
    """The providers the receiver serves, by the name in ``POST /webhooks/{name}``."""
    served: dict[str, WebhookProvider] = {}
    for name, provider in providers().items():
        accounts = settings.accounts_of(name)
        hooks = provider.webhooks(accounts) if accounts else None
        if hooks is not None:
            served[name] = hooks
    return served


def lane_bounds(settings: Settings) -> dict[tuple[str, str], int]:
    """Each configured account that can fetch (API credentials), with its refetch lane's bound:
    what its budget serves within ``refetch_horizon_seconds`` (``meetsync.queue.bound_of``).
    Accounts without credentials have no lane: their hints are dropped (counted)."""
    found: dict[tuple[str, str], int] = {}
    for name, provider in providers().items():
        for account in settings.accounts_of(name):
            if provider.missing_api(account) is not None:
                continue
            budget = provider.budget(account)
            found[account.key] = bound_of(budget.per_minute, budget.window,
                                          settings.refetch_horizon_seconds)
    return found


__all__ = [
    "LEGACY_PROVIDER",
    "EnvelopeError",
    "Hint",
    "Parsed",
    "Provider",
    "ProviderApi",
    "ProviderError",
    "Reply",
    "SelfTestDelivery",
    "SignatureError",
    "SweepPage",
    "Unchanged",
    "WebhookProvider",
    "Window",
    "lane_bounds",
    "missing_settings",
    "moment",
    "providers",
    "webhook_providers",
]
