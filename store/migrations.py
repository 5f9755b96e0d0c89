"""The mirror's migrations: one list, each change in both dialects side by side.

A mirror records the steps it applied by name: SQLite's in sqlite-utils' ``_sqlite_migrations``
(set ``meetsync``), PostgreSQL's in ``meetsync_migrations``; ``store/dialect.py`` applies the
ones a mirror lacks, in order. The names are what existing mirrors hold, so they never change.

PostgreSQL came later: its first step builds at once what SQLite's first seven had built, so
one ``Migration`` may cover several SQLite steps. A new migration is one entry here, its two
scripts written beside each other (as m010 is below).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from meetsync.store import postgres_schema as pg
from meetsync.store.schema import (
    LIVE_MEETINGS,
    SUBSCRIBER_TABLES,
    TIMES_VERSION,
    m001_mirror,
    m002_operations,
    m003_time_and_absence,
    m004_provider_identity,
    m005_account_and_credential_expiry,
    m006_participants,
    m007_occurrences,
)


@dataclass(frozen=True, slots=True)
class Step:
    """One step as a mirror records it: its name, and the script it runs."""

    name: str
    script: str


SqliteFunction = Callable[[Database], None]
"""A SQLite step needing more than a script (m004 rebuilds tables), recorded by its name."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One change of the schema: SQLite's steps and PostgreSQL's, bringing a mirror of either
    to the same tables, columns and views."""

    sqlite: tuple[Step | SqliteFunction, ...]
    postgresql: Step


_ACCOUNT_OWNERSHIP = """
ALTER TABLE events ADD COLUMN account TEXT;
ALTER TABLE appointments ADD COLUMN owner_known INTEGER NOT NULL DEFAULT 0;
"""
"""events.account: the account whose secret (or API credentials) the event came through; NULL
for events received before the mirror recorded it. appointments.owner_known: 1 once an event
written at m010 or later set ``account`` (its owner: the account it was first received under,
never overwritten); 0 for rows written before, whose ``account`` may be wrong (one provider's
deliveries all said 'default'): the next event that lands on such a row names its owner
(store/apply.py). The same words in both dialects."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        sqlite=(m001_mirror, m002_operations, m003_time_and_absence, m004_provider_identity,
                m005_account_and_credential_expiry, m006_participants, m007_occurrences),
        postgresql=Step("p001_mirror_as_of_m007", pg.MIRROR_AS_OF_M007),
    ),
    Migration(  # and live_meetings as the read API serves a deleted appointment's meetings
        sqlite=(Step("m008_times_version", TIMES_VERSION.format(integer="INTEGER")
                     + f"DROP VIEW live_meetings; {LIVE_MEETINGS};"),),
        postgresql=Step("p002_times_version", TIMES_VERSION.format(integer="BIGINT")
                        + "DROP VIEW live_meetings;" + pg.LIVE_MEETINGS),
    ),
    Migration(
        sqlite=(Step("m009_subscribers", SUBSCRIBER_TABLES),),
        postgresql=Step("p003_subscribers", pg.SUBSCRIBERS),
    ),
    Migration(
        sqlite=(Step("m010_account_ownership", _ACCOUNT_OWNERSHIP),),
        postgresql=Step("p004_account_ownership", _ACCOUNT_OWNERSHIP),
    ),
    Migration(  # PostgreSQL's alone: SQLite's triggers stay per row
        sqlite=(),
        postgresql=Step("p005_change_log_per_statement", pg.CHANGE_LOG_PER_STATEMENT),
    ),
)


def postgresql_steps() -> list[Step]:
    """PostgreSQL's steps, in order."""
    return [migration.postgresql for migration in MIGRATIONS]


def _script(script: str) -> SqliteFunction:
    def run(db: Database) -> None:
        db.executescript(script)

    return run


def _sqlite_migrations() -> Migrations:
    found = Migrations("meetsync")
    for migration in MIGRATIONS:
        for step in migration.sqlite:
            if isinstance(step, Step):
                found(name=step.name)(_script(step.script))
            else:
                found()(step)
    return found


SQLITE = _sqlite_migrations()
"""SQLite's steps as sqlite-utils applies them (``pending``, ``applied``, ``apply``)."""
