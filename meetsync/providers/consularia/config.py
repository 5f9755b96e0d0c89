"""Consularia Connect's settings, as data: one account's keys, their variables and defaults.

The single-account variables (README: Connecting Consularia Connect) are
``CONSULARIA_API_URL``, ``CONSULARIA_API_TOKEN`` and ``CONSULARIA_POLL_INTERVAL_SECONDS``;
``MEETSYNC_CONFIG`` may hold further accounts under ``[providers.consularia.accounts.NAME]``.

Guesses and keys of our own, documented here:

- ``CONSULARIA_API_URL`` defaults to ``https://api.consularia.dev/v1``: Consularia's OpenAPI
  excerpt names no server; the support address is ``support@consularia.dev`` and the document
  calls itself "1.0.0 (v1)". A guess: set the URL your organisation was given.
- ``CONSULARIA_POLL_INTERVAL_SECONDS`` (default 300): seconds between sweeps of the account.
  Consularia documents no webhooks, so polling is the only way a change arrives.
- ``CONSULARIA_POLL_WINDOW_DAYS`` (default 30): how far ahead of now a window sweep lists
  (``end_date``); appointments further out are found once they come within it.
- ``CONSULARIA_ROTATION_PER_SWEEP`` (default 25, 0 disables): how many listed appointments
  that look unchanged a sweep also fetches in full (``ProviderApi.rotation``): the listing
  carries no participants and no ``updated_at``, so a participant change is found only by a
  fetch. With ``L`` appointments listed, every one is fetched within ``ceil(L / rotation)``
  sweeps: with the defaults, 250 listed appointments are all refreshed within 10 sweeps
  (50 minutes).
- ``CONSULARIA_API_REQUESTS_PER_MINUTE`` (default 60): the rate limit is undocumented; 60 a
  minute is a conservative budget. A 429 with ``Retry-After`` is honoured either way.
"""

from __future__ import annotations

from meetsync.settings import Key

API_URL = "https://api.consularia.dev/v1"
POLL_INTERVAL_SECONDS = 300
POLL_WINDOW_DAYS = 30
ROTATION_PER_SWEEP = 25
REQUESTS_PER_MINUTE = 60

KEYS: tuple[Key, ...] = (
    Key("api_url", "CONSULARIA_API_URL", "url", default=API_URL),
    Key("api_token", "CONSULARIA_API_TOKEN", secret=True),
    Key("poll_interval_seconds", "CONSULARIA_POLL_INTERVAL_SECONDS", "int",
        default=POLL_INTERVAL_SECONDS, minimum=10),
    Key("poll_window_days", "CONSULARIA_POLL_WINDOW_DAYS", "int", default=POLL_WINDOW_DAYS,
        maximum=3660),
    Key("rotation_per_sweep", "CONSULARIA_ROTATION_PER_SWEEP", "int",
        default=ROTATION_PER_SWEEP, minimum=0),
    Key("requests_per_minute", "CONSULARIA_API_REQUESTS_PER_MINUTE", "int",
        default=REQUESTS_PER_MINUTE),
)

API_CREDENTIALS = ("api_token",)
"""The keys ``api`` needs."""

__all__ = [
    "API_CREDENTIALS",
    "API_URL",
    "KEYS",
    "POLL_INTERVAL_SECONDS",
    "POLL_WINDOW_DAYS",
    "REQUESTS_PER_MINUTE",
    "ROTATION_PER_SWEEP",
]
