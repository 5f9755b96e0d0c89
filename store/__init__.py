"""The mirror (SQLite, or PostgreSQL): schema, guarded writes and reads. Imports neither
webhooks nor worker."""

from __future__ import annotations

from meetsync.store.apply import AccountConflict, ApplyResult, Conflict
from meetsync.store.errors import StoreBusy, StoreError, StoreUnavailable
from meetsync.store.mirror import (
    DEFAULT_PROVIDER,
    Failure,
    Store,
    is_busy,
    mirror_exists,
    open_store,
    retry_later,
)

__all__ = [
    "DEFAULT_PROVIDER", "AccountConflict", "ApplyResult", "Conflict", "Failure", "Store",
    "StoreBusy", "StoreError", "StoreUnavailable", "is_busy", "mirror_exists", "open_store",
    "retry_later",
]
