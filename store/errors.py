"""The store's errors, whichever database holds the mirror.

Errors::

    StoreError
    └── StoreBusy   a lock stayed held past the busy timeout, a statement timed out, or the
        │           database could not be reached: retry later
        └── StoreUnavailable   the database cannot write now, whatever it is given: disk
                               full, an I/O error, out of memory, the connection lost, the
                               server shutting down: retry later

Neither is an event's own failure: the applier backs off with its entries pending and spends
none of their attempts (only an error the event's content causes does).
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class StoreBusy(StoreError):
    """The database is locked by another writer or a long reader, or unreachable; retry
    later."""


class StoreUnavailable(StoreBusy):
    """The database cannot take writes for now (disk full, I/O error, out of memory, lost
    connection, shutdown); retry later."""
