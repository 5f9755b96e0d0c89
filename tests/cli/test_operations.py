"""`meetsync backup` copies a live WAL mirror consistently (0600) while another connection
writes; `meetsync migrate --check` says whether a migration is pending."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from meetsync.events import Event
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.store import open_store
from meetsync.store.maintenance import backup, pending_migrations
from tests.cli.conftest import Run


def test_a_backup_of_a_mirror_being_written_is_consistent_and_private(tmp_path: Path) -> None:
    events = [e for d in SavvyCalSim(5).play(200) if isinstance(e := parse_envelope(d.body), Event)]
    db = tmp_path / "mirror.db"
    open_store(db).close()
    applied = threading.Event()
    stop = threading.Event()

    def write() -> None:  # another connection, committing one event at a time
        store = open_store(db)
        try:
            for event in events:
                if stop.is_set():
                    break
                store.apply([event])
                applied.set()
        finally:
            store.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert applied.wait(10)
        copies = [tmp_path / f"copy{n}.db" for n in range(3)]
        for copy in copies:
            assert backup(db, copy) == copy.stat().st_size
    finally:
        stop.set()
        writer.join()
    total = sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0]
    for copy in copies:
        assert copy.stat().st_mode & 0o777 == 0o600
        assert not copy.with_name(copy.name + "-wal").exists()  # one self-contained file
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert 0 < conn.execute("SELECT count(*) FROM events").fetchone()[0] <= total
        conn.close()
        assert pending_migrations(copy) == []


def test_backup_and_migrate_from_the_command_line(tmp_path: Path, meetsync: Run) -> None:
    db = tmp_path / "mirror.db"
    open_store(db).close()
    done = meetsync("backup", "--json", "copy.db", MEETSYNC_DB=str(db))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"] == str(tmp_path / "copy.db")  # the caller's directory
    again = meetsync("backup", "copy.db", MEETSYNC_DB=str(db))
    assert again.returncode == 1 and "exists (--force replaces it)" in again.stderr
    assert meetsync("backup", "--force", "copy.db", MEETSYNC_DB=str(db)).returncode == 0

    assert meetsync("migrate", "--check", MEETSYNC_DB=str(db)).stdout == "up to date\n"
    old = tmp_path / "old.db"
    sqlite3.connect(old).close()  # a mirror from before every migration
    check = meetsync("migrate", "--check", "--json", MEETSYNC_DB=str(old))
    assert check.returncode == 1 and json.loads(check.stdout)["pending"]
    assert meetsync("migrate", MEETSYNC_DB=str(old)).stdout.startswith("applied: m001_")
    assert meetsync("migrate", "--check", MEETSYNC_DB=str(old)).returncode == 0
    missing = meetsync("migrate", "--check", MEETSYNC_DB="absent.db")
    assert missing.returncode == 4
