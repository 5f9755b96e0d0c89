"""Read the mirror behind the store's back, on either backend (``db_path`` of conftest.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
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


@contextmanager
def writes_held(db: Path | str) -> Iterator[None]:
    """Another writer holding the mirror until the block ends: SQLite's write lock, or on
    PostgreSQL a lock on the inbox, which every batch writes (reads go on)."""
    if is_postgres(str(db)):
        with psycopg.connect(str(db), autocommit=True) as pg:
            pg.execute("BEGIN")
            pg.execute("LOCK TABLE events IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                pg.execute("ROLLBACK")
        return
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
