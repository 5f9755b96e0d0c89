"""The mirror (SQLite, or PostgreSQL): schema, guarded writes and reads. Imports neither
webhooks nor worker."""

from __future__ import annotations

from meetsync.errors import StoreBusy, StoreError, StoreUnavailable
from meetsync.store.apply import AccountConflict, ApplyResult, Conflict
from meetsync.store.mirror import (
    DEFAULT_PROVIDER,
    Failure,
    Store,
    mirror_exists,
    open_store,
)

__all__ = [
    "DEFAULT_PROVIDER", "AccountConflict", "ApplyResult", "Conflict", "Failure", "Store",
    "StoreBusy", "StoreError", "StoreUnavailable", "mirror_exists", "open_store",
]
