"""Avon Health: unsigned webhook hints and an authenticated API client, behind the provider
seam (``meetsync.providers``).

An Avon appointment carries its Zoom link (``video_call``): one appointment, at most one
meeting (``mapping``). Avon documents no webhook signature, so a delivery is only a ``Hint``:
the worker fetches the appointment through the API, which is authenticated, and writes only
what the API returns. Module by module:

    config     KEYS: the AVON_* settings of one account
    envelope   a delivery → Hint | ignored type
    mapping    an appointment object (GET, list row) → Event
    client     AvonClient: bearer token + x-jwt + account header, fetch, sweep

Accounts: with one Avon account configured, ``POST /webhooks/avon`` is its; with several,
each must post to ``/webhooks/avon/{account}`` (nothing in an unsigned delivery can say whose
it is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from meetsync.providers import Parsed, SelfTestDelivery, SignatureError, missing_settings
from meetsync.providers.avon.client import AvonClient
from meetsync.providers.avon.config import API_CREDENTIALS, KEYS
from meetsync.providers.avon.envelope import parse_envelope
from meetsync.providers.avon.mapping import PROVIDER as NAME
from meetsync.providers.avon.mapping import appointment_event
from meetsync.providers.http import RequestBudget
from meetsync.settings import Account, Key


class AvonWebhooks:
    """Accepts and parses Avon deliveries for several accounts (``WebhookProvider``).

    ``verify`` checks no signature (Avon has none): it only decides whose API the hint goes
    to. That is safe because a hint writes nothing by itself (``envelope``).
    """

    signature_headers: tuple[str, ...] = ()  # Avon signs nothing

    name: str = NAME

    def __init__(self, accounts: Sequence[Account]) -> None:
        self._accounts = tuple(account.name for account in accounts)

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: str | None = None
    ) -> str:
        """The account the delivery is for: the path's, else the only one configured."""
        if account is not None:
            if account not in self._accounts:
                raise SignatureError("no such avon account")
            return account
        if not self._accounts:
            raise SignatureError("no avon account configured")
        if len(self._accounts) > 1:
            raise SignatureError("several avon accounts: post to /webhooks/avon/{account}")
        return self._accounts[0]

    def parse(self, body: bytes, account: str) -> Parsed:
        """A ``Hint`` for an appointment event; the type name of any other."""
        return parse_envelope(body, account=account)


class Avon:
    """The Avon Health provider package, as the rest of meetsync sees it (``Provider``)."""

    name: str = NAME
    keys: tuple[Key, ...] = KEYS
    # An appointment that ended within a day still matters to a sweep: it may yet be marked
    # completed (or no-show) after its end (a guess; Avon documents no such delay). No
    # credential to refresh: Avon gives only a join URL, which does not expire.
    horizon = timedelta(hours=24)
    refreshable = False

    def webhooks(self, accounts: Sequence[Account]) -> AvonWebhooks:
        return AvonWebhooks(accounts)

    def budget(self, account: Account) -> RequestBudget:
        return RequestBudget(account.number("requests_per_minute"))

    def api(self, account: Account, budget: RequestBudget) -> AvonClient | None:
        api_url, client_id, client_secret, user_jwt = (account.text(k) for k in API_CREDENTIALS)
        if not (api_url and client_id and client_secret and user_jwt):
            return None
        return AvonClient(
            account=account.name,
            api_url=api_url,
            client_id=client_id,
            client_secret=client_secret,
            user_jwt=user_jwt,
            avon_account=account.text("account"),
            budget=budget,
        )

    def poll_interval(self, account: Account) -> int | None:
        return None  # webhook hints drive it; sweeps at RECONCILE_INTERVAL_SECONDS

    def setup_steps(self, account: Account, url: str) -> list[str]:
        return [
            "Avon registers webhooks by email (there is no API for it): ask Avon support to "
            f"send the appointment.* events of your account to {url}.",
            "Avon signs nothing: meetsync treats each delivery as a hint and fetches the "
            "appointment through the API, so the account's AVON_* API credentials must be set.",
        ]

    def selftest(self, account: Account, now: datetime) -> SelfTestDelivery | None:
        return None  # a hint for a test id would fetch nothing: check the API credentials

    def missing_api(self, account: Account) -> str | None:
        return missing_settings(account, KEYS, API_CREDENTIALS)


PROVIDER = Avon()

if TYPE_CHECKING:  # mypy checks the seam is met
    from meetsync.providers import Provider, ProviderApi, WebhookProvider

    _provider: Provider = PROVIDER
    _hooks: type[WebhookProvider] = AvonWebhooks
    _api: type[ProviderApi] = AvonClient

__all__ = [
    "KEYS",
    "PROVIDER",
    "Avon",
    "AvonClient",
    "AvonWebhooks",
    "appointment_event",
]
