"""Tests written for one SavvyCal account: its settings under the single-account deployment's
flat names. The core's ``Settings`` names no provider; these read the account instead."""

from __future__ import annotations

from dataclasses import dataclass

from meetsync.providers.savvycal.config import API_URL, savvycal_settings
from meetsync.settings import Account, Settings


@dataclass(frozen=True)
class Flat:
    """One settings object's SavvyCal account, flat: webhook secrets are every SavvyCal
    account's; API settings are the ``default`` account's, or the only one's."""

    settings: Settings

    def _account(self) -> Account | None:
        found = self.settings.account("savvycal")
        every = self.settings.accounts_of("savvycal")
        return found if found is not None or len(every) != 1 else every[0]

    def _secrets(self, key: str) -> tuple[str, ...]:
        return tuple(s for a in self.settings.accounts_of("savvycal") for s in a.secrets(key))

    @property
    def savvycal_webhook_secrets(self) -> tuple[str, ...]:
        return self._secrets("webhook_secret")

    @property
    def standard_webhook_secrets(self) -> tuple[str, ...]:
        return self._secrets("standard_webhook_secret")

    @property
    def savvycal_api_url(self) -> str:
        account = self._account()
        return (account and account.text("api_url")) or API_URL

    @property
    def savvycal_api_token(self) -> str | None:
        account = self._account()
        return account.text("api_token") if account else None

    @property
    def savvycal_account_id(self) -> str | None:
        account = self._account()
        return account.text("account_id") if account else None

    @property
    def api_requests_per_minute(self) -> int:
        account = self._account()
        return account.number("requests_per_minute") if account else 300


def flat(settings: Settings) -> Flat:
    return Flat(settings)


__all__ = ["API_URL", "Flat", "flat", "savvycal_settings"]
