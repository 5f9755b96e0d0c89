"""Consularia Connect: a poll-only provider behind the seam (``meetsync.providers``).

Consularia Connect is a video-appointment platform with an API (an OpenAPI excerpt; what
we guessed: docs/providers.md) and no documented webhooks: ``webhooks`` is None
(no ``/webhooks/consularia`` route), and the worker sweeps each account every
``CONSULARIA_POLL_INTERVAL_SECONDS`` (``poll_interval``). Each appointment is its own
meeting, keyed by its UUID (``mapping``). Module by module:

    config     KEYS: the CONSULARIA_* settings of one account (and the guessed defaults)
    mapping    an appointment (list item or detail) → Event
    client     ConsulariaClient: token auth, fetch, sweep (incomplete pages + rotation)
    simulator  the truth, its API, a workload (tests and benchmarks)

Guesses (each explained where it is made): the base URL (``config``), the
``Authorization: Token <key>`` header and the trailing-slash paths (``client``), the meaning
of ``start_date``/``end_date`` (``client``), the status values (``mapping``), the rate limit
(``config``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from meetsync.providers import SelfTestDelivery, missing_settings
from meetsync.providers.consularia.client import ConsulariaClient
from meetsync.providers.consularia.config import API_CREDENTIALS, API_URL, KEYS
from meetsync.providers.consularia.mapping import PROVIDER as NAME
from meetsync.providers.consularia.mapping import appointment_event
from meetsync.providers.http import RequestBudget
from meetsync.settings import Account, Key


class Consularia:
    """The Consularia Connect provider package, as the rest of meetsync sees it (``Provider``)."""

    name: str = NAME
    keys: tuple[Key, ...] = KEYS
    # An ended appointment still matters for a day: its status may still change (completed,
    # no-show) and the listing from ending_after - 12 h covers it.
    horizon = timedelta(hours=24)
    refreshable = False  # no credential that a fetch renews

    def webhooks(self, accounts: Sequence[Account]) -> None:
        return None  # poll-only: no webhooks documented

    def budget(self, account: Account) -> RequestBudget:
        return RequestBudget(account.number("requests_per_minute"))

    def api(self, account: Account, budget: RequestBudget) -> ConsulariaClient | None:
        token = account.text("api_token")
        if not token:
            return None
        return ConsulariaClient(
            account=account.name,
            api_token=token,
            budget=budget,
            api_url=account.text("api_url") or API_URL,
            poll_window_days=account.number("poll_window_days"),
            rotation=account.number("rotation_per_sweep"),
        )

    def poll_interval(self, account: Account) -> int:
        return account.number("poll_interval_seconds")

    def setup_steps(self, account: Account, url: str) -> list[str]:
        return ["Consularia Connect sends no webhooks: nothing to register. meetsync polls its"
                f" API every {self.poll_interval(account)} s (CONSULARIA_POLL_INTERVAL_SECONDS)."]

    def selftest(self, account: Account, now: datetime) -> SelfTestDelivery | None:
        return None  # poll-only

    def missing_api(self, account: Account) -> str | None:
        return missing_settings(account, KEYS, API_CREDENTIALS)


PROVIDER = Consularia()

if TYPE_CHECKING:  # mypy checks the seam is met
    from meetsync.providers import Provider, ProviderApi

    _provider: Provider = PROVIDER
    _api: type[ProviderApi] = ConsulariaClient

__all__ = [
    "KEYS",
    "PROVIDER",
    "Consularia",
    "ConsulariaClient",
    "appointment_event",
]
