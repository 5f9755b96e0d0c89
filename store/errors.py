"""The store's errors, whichever database holds the mirror.

Errors::

    StoreError
    └── StoreBusy   a lock stayed held past the busy timeout, a statement timed out, or the
                    database could not be reached: retry later
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class StoreBusy(StoreError):
    """The database is locked by another writer or a long reader, or unreachable; retry
    later."""
