"""Tests written for one SavvyCal account: its settings under the single-account deployment's
flat names (the core's ``Settings`` names no provider; these read the account instead), and a
listing of every appointment the API shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from meetsync.providers.savvycal.client import MAX_PAGE_SIZE, SavvyCalClient
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


async def iter_appointments(
    client: SavvyCalClient,
    *,
    filters: list[dict[str, Any]] | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> AsyncIterator[dict[str, Any]]:
    """Every appointment matching ``filters``, each id once.

    Pages are offsets, so rows that move while we page can be skipped or repeated (offset
    paging): repeats are dropped here; the product's sweep (``SavvyCalClient.sweep``) copes
    with the skips as well.
    """
    seen: set[str] = set()
    page = 1
    while True:
        result = await client.list_appointments(page=page, page_size=page_size, filters=filters)
        for row in result.data:
            row_id = row.get("id")
            if isinstance(row_id, str) and row_id not in seen:
                seen.add(row_id)
                yield row
        if page >= result.total_pages or not result.data:
            return
        page += 1


__all__ = ["API_URL", "Flat", "flat", "iter_appointments", "savvycal_settings"]
