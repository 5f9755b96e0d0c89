"""Operating the mirror from outside the worker: an online backup, and its migrations.

Both are safe while a worker writes: the backup copies one consistent snapshot through SQLite's
backup API (a WAL reader never blocks the writer), and migrations run under the write lock as
``open_store`` runs them.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from pathlib import Path

from meetsync.store.dialect import dialect_for

MIGRATE_TIMEOUT_SECONDS = 30
"""How long ``migrate`` waits for a worker's write lock (or, on PostgreSQL, any lock)."""


def backup(source: str | Path, target: str | Path) -> int:
    """Copy the mirror at ``source`` to ``target`` (created 0600, replaced atomically); returns
    its size in bytes. ``target`` must not be the live mirror."""
    target = Path(target)
    partial = target.with_name(f".{target.name}.partial")
    with suppress(FileNotFoundError):
        partial.unlink()
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        with closing(_read_only(source)) as src, closing(sqlite3.connect(partial)) as copy:
            src.backup(copy)  # one step: one consistent snapshot
            copy.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        os.replace(partial, target)
    except BaseException:
        with suppress(FileNotFoundError):
            partial.unlink()
        raise
    return target.stat().st_size


def pending_migrations(path: str | Path) -> list[str]:
    """The migrations the mirror at ``path`` lacks (read-only: writes nothing)."""
    return dialect_for(path).pending(path)


def migrate(path: str | Path) -> list[str]:
    """Apply what is pending (creating the mirror if need be); returns what was applied."""
    dialect = dialect_for(path)
    conn = dialect.connect(path, readonly=False, busy_timeout=MIGRATE_TIMEOUT_SECONDS)
    try:
        return dialect.migrate(conn)
    finally:
        conn.close()


def _read_only(path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30)


__all__ = ["backup", "migrate", "pending_migrations"]
