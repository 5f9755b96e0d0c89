"""SavvyCal's settings, as data: one account's keys, their variables and defaults.

The variables are those of the single-account deployment (docs/configuration.md's table);
``MEETSYNC_CONFIG`` may hold further accounts under ``[providers.savvycal.accounts.NAME]``.
"""

from __future__ import annotations

from meetsync.settings import Account, Key, Settings

API_URL = "https://api.savvycal.app/v1"

KEYS: tuple[Key, ...] = (
    Key("webhook_secret", "SAVVYCAL_WEBHOOK_SECRET", "secrets", secret=True, webhook=True),
    Key("standard_webhook_secret", "STANDARD_WEBHOOK_SECRET", "secrets", secret=True,
        prefix="whsec_", webhook=True),
    Key("api_url", "SAVVYCAL_API_URL", "url", default=API_URL),
    Key("api_token", "SAVVYCAL_API_TOKEN", secret=True),
    Key("account_id", "SAVVYCAL_ACCOUNT_ID"),
    Key("requests_per_minute", "SAVVYCAL_API_REQUESTS_PER_MINUTE", "int", default=300),
)



def savvycal_settings(
    *,
    savvycal_webhook_secrets: tuple[str, ...] = (),
    standard_webhook_secrets: tuple[str, ...] = (),
    savvycal_api_url: str = API_URL,
    savvycal_api_token: str | None = None,
    savvycal_account_id: str | None = None,
    api_requests_per_minute: int = 300,
    **core: object,
) -> Settings:
    """Settings with one ``default`` SavvyCal account, from the single-account deployment's
    flat names (the demo's stack, and tests written for one account)."""
    account = Account("savvycal", "default", {
        "webhook_secret": tuple(savvycal_webhook_secrets),
        "standard_webhook_secret": tuple(standard_webhook_secrets),
        "api_url": savvycal_api_url.rstrip("/"),
        "api_token": savvycal_api_token,
        "account_id": savvycal_account_id,
        "requests_per_minute": api_requests_per_minute,
    })
    return Settings(**core, accounts=(account,))  # type: ignore[arg-type]


__all__ = ["API_URL", "KEYS", "savvycal_settings"]
