"""SavvyCal's settings, as data: one account's keys, their variables and defaults.

The variables are those of the single-account deployment (docs/configuration.md's table);
``MEETSYNC_CONFIG`` may hold further accounts under ``[providers.savvycal.accounts.NAME]``.
"""

from __future__ import annotations

from meetsync.config import Key

KEYS: tuple[Key, ...] = (
    Key("webhook_secret", "SAVVYCAL_WEBHOOK_SECRET", "secrets", secret=True, webhook=True),
    Key("standard_webhook_secret", "STANDARD_WEBHOOK_SECRET", "secrets", secret=True,
        prefix="whsec_", webhook=True),
    Key("api_url", "SAVVYCAL_API_URL", "url", default="https://api.savvycal.app/v1"),
    Key("api_token", "SAVVYCAL_API_TOKEN", secret=True),
    Key("account_id", "SAVVYCAL_ACCOUNT_ID"),
    Key("requests_per_minute", "SAVVYCAL_API_REQUESTS_PER_MINUTE", "int", default=300),
)

__all__ = ["KEYS"]
