"""m004 keys the mirror by (provider, id) in place: a file from release 0.1.0 and one created at
m003 keep every row, in order, as SavvyCal's (or their appointment's provider's)."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlite_utils import Database

from meetsync.events import Event, Meeting
from meetsync.store import open_store
from meetsync.store.migrations import SQLITE as migrations

FIXTURE = Path(__file__).parents[1] / "data" / "mirror-0.1.0.sqlite3"
PINNED = "appt_XxiXpU16hbu1"  # tests/reconcile/test_upgrade.py heals it after this migration
TABLES = ("appointments", "meetings", "events", "changes", "dead_letters")
KEYED = ("appointments", "meetings", "events", "changes")


def contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Each table's ids in rowid order, read with a raw connection."""
    key = {"changes": "seq", "dead_letters": "event_id"}
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: conn.execute(
                f"SELECT {key.get(table, 'id')} FROM {table} ORDER BY rowid"  # noqa: S608
            ).fetchall()
            for table in TABLES
        }


def providers(path: Path) -> dict[str, set[str]]:
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: {row[0] for row in conn.execute(f"SELECT provider FROM {table}")}  # noqa: S608
            for table in KEYED
        }


def test_a_mirror_from_release_0_1_keeps_every_row_as_savvycal_s(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    shutil.copyfile(FIXTURE, path)
    before = contents(path)
    assert all(before[table] for table in TABLES)

    with open_store(path) as store:  # migrates
        applied = [m.name for m in migrations.applied(Database(store.conn))]
        assert "m004_provider_identity" in applied
        pinned = store.current_meeting(PINNED)
        assert pinned is not None and pinned["provider"] == "savvycal"
        assert store.appointment(PINNED, provider="savvycal") == store.appointment(PINNED)
        assert store.dead_letters()[0]["event_id"] == "evt_dead"
        (event_id, appointment_id) = store.conn.execute(
            "SELECT id, appointment_id FROM events ORDER BY rowid LIMIT 1").fetchone()
        redelivered = Event(id=event_id, provider="savvycal", type="appointment.updated",
                            occurred_at=2**62, appointment_id=appointment_id)
        result, failures = store.apply([redelivered])
        assert (result.applied, result.duplicates, failures) == (0, 1, [])

    assert contents(path) == before
    assert providers(path) == {table: {"savvycal"} for table in KEYED}


def test_a_mirror_created_at_m003_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrations.apply(Database(conn), stop_before="m004_provider_identity")
        conn.executescript(
            """
            INSERT INTO appointments (id, provider, meeting_id, end_at, version_at, version_event,
                                      updated_at, named_meeting_id)
            VALUES ('appt_s', 'savvycal', 'amtg_s', '2099-01-01T00:00:00Z', 1, 'evt_s', 'now',
                    'amtg_s'),
                   ('appt_a', 'avon', 'amtg_a', '2099-01-01T00:00:00Z', 1, 'evt_a', 'now',
                    'amtg_a');
            INSERT INTO meetings (id, appointment_id, host_url, first_seen_at, first_seen_rank,
                                  version_at, version_event, updated_at)
            VALUES ('amtg_s', 'appt_s', 'https://h/s', 1, 1, 1, 'evt_s', 'now'),
                   ('amtg_a', 'appt_a', 'https://h/a', 1, 1, 1, 'evt_a', 'now'),
                   ('amtg_orphan', 'appt_gone', NULL, 1, 1, 1, 'evt_o', 'now');
            INSERT INTO events (id, appointment_id, type, occurred_at, outcome, applied_at)
            VALUES ('evt_s', 'appt_s', 't', 1, 'applied', 'now'),
                   ('evt_o', 'appt_gone', 't', 1, 'applied', 'now'),
                   ('evt_a', 'appt_a', 't', 1, 'applied', 'now');
            """
        )
    before = contents(path)
    open_store(path).close()  # migrates
    assert contents(path) == before

    with open_store(path) as store:
        rows = store.conn.execute(
            "SELECT 'meetings', id, provider FROM meetings UNION ALL"
            " SELECT 'events', id, provider FROM events ORDER BY 1, 2").fetchall()
        assert rows == [
            ("events", "evt_a", "avon"), ("events", "evt_o", "savvycal"),
            ("events", "evt_s", "savvycal"),
            ("meetings", "amtg_a", "avon"), ("meetings", "amtg_orphan", "savvycal"),
            ("meetings", "amtg_s", "savvycal"),
        ]
        live = store.conn.execute(
            "SELECT provider, id, host_url FROM live_meetings ORDER BY id").fetchall()
        assert live == [("avon", "amtg_a", "https://h/a"), ("savvycal", "amtg_orphan", None),
                        ("savvycal", "amtg_s", "https://h/s")]
        seen = store.changes_since(0)[-1]["seq"]
        store.apply([Event(id="evt_s2", provider="savvycal", type="t", occurred_at=2,
                           appointment_id="appt_s", appointment_status="canceled",
                           meeting=Meeting(id="amtg_s", status="canceled"))])
        assert {(c["provider"], c["entity"]) for c in store.changes_since(seen)} == {
            ("savvycal", "appointment"), ("savvycal", "meeting")}
