"""One migration list: the step names existing mirrors recorded are the ones it applies, and
each dialect's steps build the same tables, views and columns."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
from sqlite_utils import Database

from meetsync.store import migrations, open_store
from meetsync.store.postgres import is_postgres

RECORDED_SQLITE = [
    "m001_mirror", "m002_operations", "m003_time_and_absence", "m004_provider_identity",
    "m005_account_and_credential_expiry", "m006_participants", "m007_occurrences",
    "m008_times_version", "m009_subscribers", "m010_account_ownership",
]
RECORDED_POSTGRESQL = [
    "p001_mirror_as_of_m007", "p002_times_version", "p003_subscribers", "p004_account_ownership",
    "p005_change_log_per_statement",
]
OWN_COLUMNS = {("changes", "row_id")}
"""PostgreSQL's alone: the change log's insertion order, ``seq`` being assigned at commit."""


def test_the_list_applies_the_names_mirrors_recorded() -> None:
    fresh = Database(memory=True)
    assert [m.name for m in migrations.SQLITE.pending(fresh)] == RECORDED_SQLITE
    assert [step.name for step in migrations.postgresql_steps()] == RECORDED_POSTGRESQL


def columns(db: Path | str) -> set[tuple[str, str]]:
    """Every (table or view, column) of the mirror's own schema."""
    if is_postgres(str(db)):
        with psycopg.connect(str(db), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name <> 'meetsync_migrations'"
            ).fetchall()
        return {(str(table), str(column)) for table, column in rows} - OWN_COLUMNS
    with closing(sqlite3.connect(db)) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
            " AND name NOT LIKE 'sqlite_%' AND name <> '_sqlite_migrations'")]
        return {(name, row[1]) for name in names
                for row in conn.execute(f"PRAGMA table_info({name})")}


def test_each_dialect_builds_the_same_columns(db_path: Path | str, sqlite_template: Path) -> None:
    open_store(db_path).close()
    assert columns(db_path) == columns(sqlite_template)
