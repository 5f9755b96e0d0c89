"""Avon Health's settings, as data: one account's keys, their variables and defaults.

The variables are the single-account deployment's (README, Avon: ``AVON_API_URL`` plus the
credentials its API needs, named ``AVON_*``); ``MEETSYNC_CONFIG`` may hold further accounts
under ``[providers.avon.accounts.NAME]``. There is no ``AVON_WEBHOOK_SECRET``: Avon documents no
signing scheme, so deliveries are hints (``envelope``).

What Avon's docs say (docs.avonhealth.com, "Authentication" and "SDKs"), and our reading:

- ``AVON_API_URL``: the API root, ``https://{base_subdomain}.avonhealth.com`` (the SDK's
  ``baseUrl``; paths start with ``/v2``). Each customer has its own subdomain, so there is no
  default: it is one of the credentials ``api`` needs.
- ``AVON_CLIENT_ID``, ``AVON_CLIENT_SECRET``: the organisation-level pair exchanged for a
  bearer token at ``/v2/auth/token``.
- ``AVON_USER_JWT``: the user-level JWT sent as ``x-jwt`` ("identifies the acting caller").
  The docs show it minted from a user id and a secret key (HS256, issuer and audience
  ``avonhealth``, an expiry) or by ``/v2/auth/get-jwt``; we take it ready-made, as the SDK's
  ``jwt`` option does. When it expires the API answers 401 even with a fresh bearer token:
  the client then fails with a permanent error naming the status, and the operator mints a
  new one.
- ``AVON_ACCOUNT``: the ``account`` header. The guide asks for it "when using the staging
  account"; the SDK sends it always. Optional: sent when set.

One key is ours (a guess, documented here): ``AVON_API_REQUESTS_PER_MINUTE`` (default 60).
Avon documents no rate limit (its API reference); 60/min is a conservative budget. A 429 with
``Retry-After`` is honoured whatever the budget.
"""

from __future__ import annotations

from meetsync.settings import Key

REQUESTS_PER_MINUTE = 60

KEYS: tuple[Key, ...] = (
    Key("api_url", "AVON_API_URL", "url"),
    Key("client_id", "AVON_CLIENT_ID"),
    Key("client_secret", "AVON_CLIENT_SECRET", secret=True),
    Key("user_jwt", "AVON_USER_JWT", secret=True),
    Key("account", "AVON_ACCOUNT"),
    Key("requests_per_minute", "AVON_API_REQUESTS_PER_MINUTE", "int",
        default=REQUESTS_PER_MINUTE),
)

API_CREDENTIALS = ("api_url", "client_id", "client_secret", "user_jwt")
"""The keys ``api`` needs; ``account`` is optional (see the module docstring)."""

__all__ = ["API_CREDENTIALS", "KEYS", "REQUESTS_PER_MINUTE"]
