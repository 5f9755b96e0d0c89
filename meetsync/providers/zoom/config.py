"""Zoom's settings, as data: one account's keys, their variables and defaults.

The variables are the single-account deployment's (README: Connecting
Zoom); ``MEETSYNC_CONFIG`` may hold further accounts under
``[providers.zoom.accounts.NAME]``.

Two keys are ours, not the contract's (guesses, documented here):

- ``ZOOM_API_REQUESTS_PER_SECOND`` (default 4): Zoom limits requests per second per account,
  shared by every app of that account. 4/s is the "Light" limit of the Free plan, the lowest
  there is (https://developers.zoom.us/docs/api/rate-limits/): safe everywhere; Pro
  accounts may raise it to 30, Business+ to 80.
  The daily caps (6,000 Light requests/day on Free) are not budgeted: a 429 says so with an
  ISO-8601 ``Retry-After`` the client honours.
- ``ZOOM_USER_IDS`` (a comma-separated list; ``user_ids = [...]`` in the file) and
  ``ZOOM_USER_ID`` (one; kept from before): whose meetings a sweep lists
  (``GET /users/{userId}/meetings``), by user id or email (``me``: the token's own user).
  Neither set: every active user of the account (``GET /users?status=active``), which the app
  may do with the ``user:read:list_users:admin`` scope (``user:read:admin`` in the classic
  scopes).
"""

from __future__ import annotations

from meetsync.settings import Key

API_URL = "https://api.zoom.us/v2"
OAUTH_URL = "https://zoom.us/oauth/token"
START_URL_TTL_SECONDS = 7200  # start_url lives 2 h for regular users (Zoom API: "Get a meeting")

KEYS: tuple[Key, ...] = (
    Key("webhook_secret_token", "ZOOM_WEBHOOK_SECRET_TOKEN", "secrets", secret=True,
        webhook=True),
    Key("api_url", "ZOOM_API_URL", "url", default=API_URL),
    Key("oauth_url", "ZOOM_OAUTH_URL", "url", default=OAUTH_URL),
    # Server-to-Server OAuth needs all three: one alone is a setup mistake, refused
    Key("account_id", "ZOOM_ACCOUNT_ID", together=("client_id", "client_secret")),
    Key("client_id", "ZOOM_CLIENT_ID", together=("account_id", "client_secret")),
    Key("client_secret", "ZOOM_CLIENT_SECRET", secret=True,
        together=("account_id", "client_id")),
    Key("start_url_ttl_seconds", "ZOOM_START_URL_TTL_SECONDS", "int",
        default=START_URL_TTL_SECONDS),
    Key("requests_per_second", "ZOOM_API_REQUESTS_PER_SECOND", "int", default=4),
    Key("user_id", "ZOOM_USER_ID"),
    Key("user_ids", "ZOOM_USER_IDS", "list"),
)

API_CREDENTIALS = ("account_id", "client_id", "client_secret")
"""The keys ``api`` needs (Server-to-Server OAuth, account credentials grant)."""

__all__ = ["API_CREDENTIALS", "API_URL", "KEYS", "OAUTH_URL", "START_URL_TTL_SECONDS"]
