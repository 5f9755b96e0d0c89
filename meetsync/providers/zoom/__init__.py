"""Zoom: signed webhooks (``v0``), the URL validation handshake, and a Server-to-Server OAuth
API client, behind the provider seam (``meetsync.providers``).

Each Zoom meeting is one appointment and its meeting, keyed by the numeric meeting id
(``mapping``). Webhooks never carry ``start_url`` (the host's credential, valid 2 h), so they
never carry a meeting: ``GET /meetings/{id}`` does, and the worker refetches before a
``start_url`` dies (``refreshable``). Module by module:

    config     KEYS: the ZOOM_* settings of one account
    signing    x-zm-signature verification, url_validation_reply
    envelope   a delivery → Event | Hint | UrlValidation | ignored type
    mapping    a meeting object (webhook, list row, GET) → Event
    client     ZoomClient: OAuth token, fetch, sweep

Several accounts (several Zoom apps) may post to one ``/webhooks/zoom`` URL: each has its own
secret token, and the one that verifies a delivery names its account (Zoom's apps cannot share
a token: https://developers.zoom.us/docs/api/webhooks/).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from meetsync.providers import Parsed, Reply, SelfTestDelivery, SignatureError, missing_settings
from meetsync.providers.http import RequestBudget
from meetsync.providers.zoom import selftest as _selftest
from meetsync.providers.zoom import signing
from meetsync.providers.zoom.client import ZoomClient
from meetsync.providers.zoom.config import API_CREDENTIALS, API_URL, KEYS, OAUTH_URL
from meetsync.providers.zoom.envelope import URL_VALIDATION, UrlValidation, parse_envelope
from meetsync.providers.zoom.mapping import PROVIDER as NAME
from meetsync.providers.zoom.mapping import deleted_event, meeting_event, occurrences
from meetsync.settings import Account, Key

SECRET_KEY = "webhook_secret_token"  # noqa: S105 (a settings key name)
_VALIDATION_MARK = URL_VALIDATION.encode()
_REMEMBERED = 256


class ZoomWebhooks:
    """Verifies and parses Zoom deliveries for several accounts (``WebhookProvider``)."""

    name: str = NAME
    signature_headers: tuple[str, ...] = (signing.SIGNATURE_HEADER, signing.TIMESTAMP_HEADER)

    def __init__(
        self, accounts: Sequence[Account], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = tuple(
            (account.name, secret) for account in accounts for secret in account.secrets(SECRET_KEY)
        )
        self._secrets = tuple(secret for _, secret in self._keys)
        self._clock = clock
        # Which secret signed each recent url_validation body: the answer must use that very
        # secret (an account may list several during a rotation). Body digests only.
        self._signed_with: OrderedDict[bytes, int] = OrderedDict()

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: str | None = None
    ) -> str:
        """The account whose secret token signed ``body``; ``SignatureError`` if none."""
        index = signing.verify(body, headers, self._secrets, now=self._clock())
        if _VALIDATION_MARK in body:
            self._signed_with[hashlib.sha256(body).digest()] = index
            while len(self._signed_with) > _REMEMBERED:
                self._signed_with.popitem(last=False)
        return self._keys[index][0]

    def parse(self, body: bytes, account: str) -> Parsed:
        """What a verified delivery to ``account`` says (``envelope`` for the cases)."""
        found = parse_envelope(body, account=account)
        if isinstance(found, UrlValidation):
            secret = self._secret(body, account)
            return Reply(signing.url_validation_reply(found.plain_token, secret))
        return found

    def _secret(self, body: bytes, account: str) -> str:
        """The secret that verified ``body``; else the account's first (its current one)."""
        index = self._signed_with.get(hashlib.sha256(body).digest())
        if index is not None and self._keys[index][0] == account:
            return self._keys[index][1]
        secret = next((secret for name, secret in self._keys if name == account), None)
        if secret is None:
            raise SignatureError("no secret token configured for this account")
        return secret


class Zoom:
    """The Zoom provider package, as the rest of meetsync sees it (``Provider``)."""

    name: str = NAME
    keys: tuple[Key, ...] = KEYS
    # Zoom lists upcoming and live meetings; one that ended is fetched one by one while it
    # ended within the horizon. Longer would cost a GET per ended meeting per sweep for
    # nothing: after a meeting ends, GET /meetings/{id} answers "waiting" again (mapping).
    horizon = timedelta(minutes=15)
    refreshable = True

    def webhooks(self, accounts: Sequence[Account]) -> ZoomWebhooks:
        # With no secret token configured every delivery is refused (401), as for SavvyCal.
        return ZoomWebhooks(accounts)

    def budget(self, account: Account) -> RequestBudget:
        # Zoom limits requests per second: the budget's window is one second.
        return RequestBudget(account.number("requests_per_second"), window=1.0)

    def api(self, account: Account, budget: RequestBudget) -> ZoomClient | None:
        account_id, client_id, client_secret = (account.text(k) for k in API_CREDENTIALS)
        if not (account_id and client_id and client_secret):
            return None
        return ZoomClient(
            account=account.name,
            account_id=account_id,
            client_id=client_id,
            client_secret=client_secret,
            budget=budget,
            api_url=account.text("api_url") or API_URL,
            oauth_url=account.text("oauth_url") or OAUTH_URL,
            ttl_seconds=account.number("start_url_ttl_seconds"),
            user_ids=users_of(account),
        )

    def poll_interval(self, account: Account) -> int | None:
        return None  # webhooks drive it; sweeps at RECONCILE_INTERVAL_SECONDS

    def missing_api(self, account: Account) -> str | None:
        return missing_settings(account, KEYS, API_CREDENTIALS)

    def setup_steps(self, account: Account, url: str) -> list[str]:
        return _selftest.setup_steps(account, url)

    def selftest(self, account: Account, now: datetime) -> SelfTestDelivery | None:
        return _selftest.selftest(account, now)


def users_of(account: Account) -> tuple[str, ...] | None:
    """Whose meetings the account's sweep lists: ``user_ids`` and ``user_id`` (an older
    setting, kept), each once; None (neither set): every active user of the account."""
    listed = dict.fromkeys((*account.texts("user_ids"), *filter(None, [account.text("user_id")])))
    return tuple(listed) or None


PROVIDER = Zoom()

if TYPE_CHECKING:  # mypy checks the seam is met
    from meetsync.providers import Provider, ProviderApi, WebhookProvider

    _provider: Provider = PROVIDER
    _hooks: type[WebhookProvider] = ZoomWebhooks
    _api: type[ProviderApi] = ZoomClient

__all__ = [
    "KEYS",
    "PROVIDER",
    "Zoom",
    "ZoomClient",
    "ZoomWebhooks",
    "deleted_event",
    "meeting_event",
    "occurrences",
]
