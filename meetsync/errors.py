"""meetsync's exceptions, in one tree (drawn as httpx draws its own, ``httpx/_exceptions.py``).

The distinction that matters to the worker is retryable against permanent: a busy store and a
retryable API error are waited out (only ``worker/`` turns them into a later try); anything
else is the input's or the configuration's fault and is reported, never retried blindly.

Errors::

    MeetsyncError
    ├── ProviderError            the provider seam; messages are safe to return to callers
    │   ├── SignatureError       (meetsync.providers) delivery not verified: answer 401
    │   ├── EnvelopeError        (meetsync.providers) not an envelope we understand: 400
    │   └── ApiError             a provider API call failed
    │       ├── RetryableApiError    worth trying again later (``retry_after`` when told)
    │       └── PermanentApiError    trying again will not help: fix token, account, request
    ├── StoreError               the mirror's database, whichever it is
    │   └── StoreBusy            a lock held past the busy timeout, a statement timeout, the
    │       │                    database unreachable: retry later
    │       └── StoreUnavailable the database cannot write now (disk full, I/O error, out of
    │                            memory, connection lost, server shutting down): retry later
    ├── SettingsError            configuration missing or malformed, one message per problem
    └── CliError                 (meetsync.cli.errors) a command cannot run
        └── Unavailable          a dependency is down or absent (Redis, the mirror, a 2nd dev)

The store raises its own errors at its edge: a driver's (``sqlite3``, ``psycopg``) lock or
outage leaves it as ``StoreBusy``/``StoreUnavailable``, so no caller matches driver messages.
Neither store error is an event's own failure: the applier backs off with its entries pending
and spends none of their attempts (only an error the event's content causes does).
"""

from __future__ import annotations


class MeetsyncError(Exception):
    """Base of every error meetsync raises on purpose."""


class ProviderError(MeetsyncError):
    """Base of the provider seam's errors. Messages are safe to return to callers: no secrets,
    no body."""


class ApiError(ProviderError):
    """A provider API call failed."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RetryableApiError(ApiError):
    """Worth trying again later (``retry_after`` when the provider said how long)."""


class PermanentApiError(ApiError):
    """Trying again will not help: fix the token, the account or the request."""


class StoreError(MeetsyncError):
    """Base of the store's errors."""


class StoreBusy(StoreError):
    """The database is locked by another writer or a long reader, or unreachable; retry
    later."""


class StoreUnavailable(StoreBusy):
    """The database cannot take writes for now (disk full, I/O error, out of memory, lost
    connection, shutdown); retry later."""


class SettingsError(MeetsyncError):
    """Settings are missing or malformed: one message per problem, each naming the setting
    (never its value: many are secrets)."""

    def __init__(self, *problems: str) -> None:
        self.problems: tuple[str, ...] = problems
        super().__init__("\n".join(problems))


class CliError(MeetsyncError):
    """A command cannot run (the CLI turns each kind into its exit code)."""


class Unavailable(CliError):
    """Redis unreachable, no mirror file, Redis cannot start, a dev stack already running."""


__all__ = [
    "ApiError",
    "CliError",
    "MeetsyncError",
    "PermanentApiError",
    "ProviderError",
    "RetryableApiError",
    "SettingsError",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "Unavailable",
]
