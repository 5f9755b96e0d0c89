"""Read the mirror behind the store's back, on either backend (``db_path`` of conftest.py)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from meetsync.store.postgres import is_postgres, translate


def query(db: Path | str, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Any]:
    """Every row ``sql`` (SQLite's dialect, as the store's) returns, as tuples."""
    if is_postgres(str(db)):
        with psycopg.connect(str(db), autocommit=True) as conn:
            return [tuple(row) for row in conn.execute(translate(sql), params).fetchall()]
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def execute(db: Path | str, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> None:
    """Run one write, committed."""
    if is_postgres(str(db)):
        with psycopg.connect(str(db), autocommit=True) as conn:
            conn.execute(translate(sql), params)
        return
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute(sql, params)


class WriteLock:
    """Another writer holding the mirror until ``release()``: SQLite's write lock (``BEGIN
    IMMEDIATE``), or on PostgreSQL an exclusive lock on the inbox, which every apply writes
    (readers go on)."""

    def __init__(self, db: Path | str) -> None:
        self._pg: psycopg.Connection[Any] | None = None
        self._sqlite: sqlite3.Connection | None = None
        if is_postgres(str(db)):
            self._pg = psycopg.connect(str(db), autocommit=True)
            self._pg.execute("BEGIN")
            self._pg.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        else:
            self._sqlite = sqlite3.connect(db, isolation_level=None)
            self._sqlite.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        for conn in (self._pg, self._sqlite):
            if conn is not None:
                conn.execute("ROLLBACK")
                conn.close()
        self._pg = self._sqlite = None
