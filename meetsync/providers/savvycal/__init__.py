"""SavvyCal Appointments: its settings, webhook signatures and envelope, and its API client.

``PROVIDER`` is this package behind the seam (``meetsync.providers.Provider``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from meetsync.events import Event
from meetsync.providers import SelfTestDelivery, SignatureError, missing_settings
from meetsync.providers.http import RequestBudget
from meetsync.providers.savvycal import selftest as _selftest
from meetsync.providers.savvycal.client import SavvyCalClient
from meetsync.providers.savvycal.config import API_URL, KEYS
from meetsync.providers.savvycal.envelope import (
    CREDENTIAL_LIFETIME,
    appointment_event,
    parse_envelope,
)
from meetsync.providers.savvycal.envelope import (
    PROVIDER as NAME,
)
from meetsync.providers.savvycal.signing import NativeScheme, StandardScheme
from meetsync.settings import Account, Settings

_STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
_NATIVE_HEADER = "x-savvycal-signature"


class SavvyCalWebhooks:
    """Verifies and parses SavvyCal deliveries, natively signed or relayed via Standard
    Webhooks, for every configured account (a delivery belongs to the account whose secret
    signed it)."""

    name: str = NAME
    signature_headers: tuple[str, ...] = (
        _NATIVE_HEADER, "x-savvycal-webhook-id", *_STANDARD_HEADERS, *_SVIX_HEADERS)

    def __init__(
        self,
        savvycal_secrets: Iterable[str] = (),
        standard_secrets: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.time,
        account: str = "default",
    ) -> None:
        self._accounts: list[tuple[str, NativeScheme, StandardScheme]] = []
        self._clock = clock
        self.add_account(account, savvycal_secrets, standard_secrets)

    def add_account(
        self, name: str, savvycal_secrets: Iterable[str], standard_secrets: Iterable[str]
    ) -> None:
        self._accounts.append(
            (name, NativeScheme(savvycal_secrets), StandardScheme(standard_secrets, self._clock)))

    @classmethod
    def for_accounts(
        cls, accounts: Sequence[Account], *, clock: Callable[[], float] = time.time
    ) -> SavvyCalWebhooks:
        hooks = cls(clock=clock)  # no account: every delivery fails as the schemes say
        if accounts:
            hooks._accounts.clear()
        for account in accounts:
            hooks.add_account(account.name, account.secrets("webhook_secret"),
                              account.secrets("standard_webhook_secret"))
        return hooks

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> SavvyCalWebhooks:
        return cls.for_accounts(settings.accounts_of(NAME), clock=clock)

    def verify(
        self, body: bytes, headers: Mapping[str, str], account: str | None = None
    ) -> str:
        """The account whose secret signed the delivery, by any scheme it carries headers for.

        A delivery relayed through Svix may carry both schemes' headers; either is proof.
        """
        lowered = {key.lower(): value for key, value in headers.items()}
        native = lowered.get(_NATIVE_HEADER)
        standard = any(name in lowered for name in _STANDARD_HEADERS + _SVIX_HEADERS)
        if not standard and native is None:
            raise SignatureError("missing signature")
        reason: SignatureError | None = None
        for name, native_scheme, standard_scheme in self._accounts:
            try:
                self._verify(body, lowered, native, standard, native_scheme, standard_scheme)
                return name
            except SignatureError as exc:  # say why, unless only "no secret" for some account
                if reason is None or str(reason).startswith("no secret"):
                    reason = exc
        raise reason or SignatureError("no secret configured for this provider")

    @staticmethod
    def _verify(
        body: bytes, lowered: Mapping[str, str], native: str | None, standard: bool,
        native_scheme: NativeScheme, standard_scheme: StandardScheme,
    ) -> None:
        if standard:
            msg_id, timestamp, signature = (
                lowered.get(std) or lowered.get(svix)
                for std, svix in zip(_STANDARD_HEADERS, _SVIX_HEADERS, strict=True)
            )
            try:
                standard_scheme.verify(body, msg_id, timestamp, signature)
                return
            except SignatureError:
                if native is None:
                    raise
        assert native is not None
        native_scheme.verify(body, native)

    def parse(self, body: bytes, account: str = "default") -> Event | str:
        return parse_envelope(body, provider=self.name, account=account)


class SavvyCal:
    """The SavvyCal Appointments provider, behind the seam."""

    name = NAME
    keys = KEYS
    horizon: timedelta = CREDENTIAL_LIFETIME  # ended longer ago, its credentials are dead
    refreshable = False  # a fetch returns the same host_url: its life ends with the appointment

    def webhooks(self, accounts: Sequence[Account]) -> SavvyCalWebhooks:
        return SavvyCalWebhooks.for_accounts(accounts)

    def budget(self, account: Account) -> RequestBudget:
        return RequestBudget(account.number("requests_per_minute"))

    def api(self, account: Account, budget: RequestBudget) -> SavvyCalClient | None:
        token = account.text("api_token")
        if token is None:
            return None
        return SavvyCalClient(
            account.text("api_url") or API_URL, token,
            account_id=account.text("account_id"), account=account.name, budget=budget,
        )

    def poll_interval(self, account: Account) -> int | None:
        return None  # webhooks drive it; sweeps at RECONCILE_INTERVAL_SECONDS

    def missing_api(self, account: Account) -> str | None:
        return missing_settings(account, KEYS, ("api_token",))

    def setup_steps(self, account: Account, url: str) -> list[str]:
        return _selftest.setup_steps(account, url)

    def selftest(self, account: Account, now: datetime) -> SelfTestDelivery | None:
        return _selftest.selftest(account, now)


PROVIDER = SavvyCal()

__all__ = ["PROVIDER", "SavvyCal", "SavvyCalWebhooks", "appointment_event"]
