"""Guarded writes: duplicates, stale events, ties and replacement chains, in any order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meetsync.events import Event, Meeting
from meetsync.store import Store, open_store
from tests.helpers.store import tied_appointments
from tests.sql import query as sql_query

FAR = "2099-01-01T00:00:00Z"


def meeting(
    mid: str, status: str = "created", host: str | None = None, *,
    host_expires: str | None = None, password_expires: str | None = None,
) -> Meeting:
    return Meeting(
        id=mid,
        status=status,
        conferencing_provider="zoom_admin",
        join_url=f"https://zoom.us/j/{mid}",
        host_url=host,
        password="pw-" + mid if host else None,
        host_url_expires_at=host_expires,
        password_expires_at=password_expires,
    )


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with open_store(db_path) as store:
        yield store


def query(db_path: Path | str, sql: str) -> list[Any]:
    return sql_query(db_path, sql)


def event(
    eid: str, at: int, m: Meeting | None, *, appt: str = "appt_1", prev: str | None = None,
    status: str = "scheduled", end: str = FAR, type_: str = "appointment.meeting.updated",
    account: str = "default",
) -> Event:
    return Event(
        id=eid, provider="savvycal", type=type_, occurred_at=at, appointment_id=appt,
        appointment_status=status, start_at="2098-12-31T23:00:00Z", end_at=end, meeting=m,
        previous_meeting_id=prev, account=account,
    )


def test_duplicate_event_changes_nothing(store: Store) -> None:
    e = event("evt_1", 10, meeting("amtg_a", host="https://h/1"))
    first, _ = store.apply([e])
    seq = store.changes_since(0)[-1]["seq"]
    again, _ = store.apply([e, e])
    assert (first.applied, again.applied, again.duplicates) == (1, 0, 2)
    assert store.changes_since(seq) == []


def test_older_event_never_overwrites_newer(store: Store) -> None:
    store.apply([event("evt_2", 20, meeting("amtg_a", "created", "https://h/new"))])
    result, _ = store.apply([event("evt_1", 10, meeting("amtg_a", "pending"))])
    current = store.current_meeting("appt_1")
    assert result.stale == 1
    assert current is not None
    assert (current["status"], current["host_url"]) == ("created", "https://h/new")


def test_host_url_rotation_is_refreshed(store: Store) -> None:
    store.apply([event("evt_1", 10, meeting("amtg_a", host="https://h/1"))])
    store.apply([event("evt_2", 11, meeting("amtg_a", host="https://h/2"))])
    assert store.current_meeting("appt_1")["host_url"] == "https://h/2"  # type: ignore[index]


def test_replacement_chain_resolves_to_newest_and_clears_credentials(
    store: Store, db_path: Path
) -> None:
    a, b, c = meeting("amtg_a", host="https://h/a"), meeting("amtg_b", host="https://h/b"), \
        meeting("amtg_c", host="https://h/c")
    # delivered newest first: C, then the A->B replacement, then A's creation
    store.apply([event("evt_3", 30, c, prev="amtg_b", type_="appointment.meeting.replaced")])
    store.apply([event("evt_2", 20, b, prev="amtg_a", type_="appointment.meeting.replaced")])
    store.apply([event("evt_1", 10, a)])
    assert store.current_meeting("appt_1")["id"] == "amtg_c"  # type: ignore[index]
    old_a, old_b = store.meeting("amtg_a"), store.meeting("amtg_b")
    assert old_a is not None and old_b is not None
    assert (old_a["replaced_by"], old_b["replaced_by"]) == ("amtg_b", "amtg_c")
    raw = query(db_path, "SELECT id, host_url, password FROM meetings ORDER BY id")
    assert raw == [("amtg_a", None, None), ("amtg_b", None, None),
                   ("amtg_c", "https://h/c", "pw-amtg_c")]


def test_late_update_for_superseded_meeting_never_makes_it_current(
    store: Store, db_path: Path
) -> None:
    store.apply([event("evt_1", 10, meeting("amtg_a")),
                 event("evt_2", 20, meeting("amtg_b"), prev="amtg_a")])
    # A's own late update, newer than anything (the provider still reporting on the old meeting)
    store.apply([event("evt_3", 30, meeting("amtg_a", "canceled", host="https://h/a"))])
    assert store.current_meeting("appt_1")["id"] == "amtg_b"  # type: ignore[index]
    old = store.meeting("amtg_a")
    assert old is not None
    assert (old["status"], old["host_url"], old["replaced_by"]) == ("canceled", None, "amtg_b")
    # Not even stored: a meeting replaced keeps no credential.
    assert query(db_path, "SELECT host_url, password FROM meetings WHERE id = 'amtg_a'") == [
        (None, None)]


def test_replacement_without_previous_id_follows_what_the_mirror_held(store: Store) -> None:
    store.apply([event("evt_1", 10, meeting("amtg_a"))])
    store.apply([event("evt_2", 20, meeting("amtg_b"), type_="appointment.meeting.replaced")])
    assert store.meeting("amtg_a")["replaced_by"] == "amtg_b"  # type: ignore[index]


def test_exact_tie_is_deterministic_and_flagged_for_refetch(tmp_path: Path) -> None:
    x = event("evt_x", 10, meeting("amtg_a", "created"))
    y = event("evt_y", 10, meeting("amtg_a", "failed"))
    states = []
    for name, order in (("xy", [x, y]), ("yx", [y, x])):
        with open_store(tmp_path / f"{name}.db") as store:
            ties = set()
            for e in order:
                result, _ = store.apply([e])
                ties |= result.ties
            assert ties == {("savvycal", "appt_1")}
            assert tied_appointments(store) == ["appt_1"]
            states.append(store.current_meeting("appt_1")["status"])  # type: ignore[index]
    assert states[0] == states[1] == "failed"  # the greater event id wins a tie


def test_newer_event_clears_tie_flag(store: Store) -> None:
    store.apply([event("evt_x", 10, meeting("amtg_a")), event("evt_y", 10, meeting("amtg_a"))])
    store.apply([event("evt_z", 11, meeting("amtg_a"))])
    assert tied_appointments(store) == []


def test_each_credential_is_served_until_its_own_expiry(db_path: Path) -> None:
    host_dies, password_dies = "2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"
    with open_store(db_path, clock=lambda: datetime(2026, 1, 1, 12, tzinfo=UTC)) as store:
        store.apply([event("evt_1", 10, meeting("amtg_a", host="https://h/a",
                                                 host_expires=host_dies,
                                                 password_expires=password_dies),
                           end="2026-01-01T10:00:00Z")])
        before = datetime(2026, 1, 2, 9, 59, tzinfo=UTC)
        after = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
        served = store.current_meeting("appt_1", now=before)
        assert served is not None and (served["host_url"], served["password"]) == (
            "https://h/a", "pw-amtg_a")
        assert (served["host_url_expires_at"], served["password_expires_at"]) == (
            host_dies, password_dies)
        served = store.current_meeting("appt_1", now=after)
        assert served is not None and (served["host_url"], served["password"]) == (
            None, "pw-amtg_a")
        view = query(db_path, "SELECT host_url, password, host_url_expires_at FROM live_meetings")
        assert view == [(None, None, host_dies)]  # the view uses the real clock: long expired
        assert store.purge_expired_credentials(now=after) == 1
        assert query(db_path, "SELECT host_url, password FROM meetings") == [(None, "pw-amtg_a")]
        assert store.purge_expired_credentials(now=after) == 0
        assert store.purge_expired_credentials(now=datetime(2026, 1, 3, 10, tzinfo=UTC)) == 1
        assert query(db_path, "SELECT host_url, password FROM meetings") == [(None, None)]


def test_change_log_follows_visible_changes_only(store: Store) -> None:
    store.apply([event("evt_1", 10, meeting("amtg_a", "pending"))])
    seq = store.changes_since(0)[-1]["seq"]
    store.apply([event("evt_2", 20, meeting("amtg_a", "pending"))])  # same content, newer
    assert store.changes_since(seq) == []
    store.apply([event("evt_3", 30, meeting("amtg_a", "created"))])
    assert [(c["entity"], c["entity_id"]) for c in store.changes_since(seq)] == [
        ("meeting", "amtg_a")
    ]


@pytest.mark.sqlite_only
def test_mirror_file_is_private_and_wal(db_path: Path) -> None:
    open_store(db_path).close()
    assert db_path.stat().st_mode & 0o777 == 0o600
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_poison_event_is_isolated_from_its_batch(store: Store) -> None:
    # a NOT NULL violation stands in for any event the database refuses on its own
    bad = Event(id="evt_bad", provider="savvycal", type="t", occurred_at=5,
                appointment_id=None)  # type: ignore[arg-type]
    good = event("evt_ok", 10, meeting("amtg_a"))
    result, failures = store.apply([bad, good])
    assert result.applied == 1
    assert [f.event.id for f in failures] == ["evt_bad"]
    assert store.current_meeting("appt_1") is not None


def test_meeting_columns_are_the_meeting_fields(db_path: Path) -> None:
    from dataclasses import fields

    from meetsync.events import MEETING_FIELDS

    expiries = ("host_url_expires_at", "password_expires_at")
    assert tuple(f.name for f in fields(Meeting))[1:] == MEETING_FIELDS + expiries
    open_store(db_path).close()
    with open_store(db_path) as store:
        columns = [c[0] for c in store.conn.execute("SELECT * FROM meetings").description]
    assert set(MEETING_FIELDS + expiries) <= set(columns)


def test_pruned_inbox_still_rejects_an_old_redelivery(store: Store) -> None:
    old = event("evt_old", 10, meeting("amtg_a", "pending"))
    store.apply([old, event("evt_new", 20, meeting("amtg_a", "created"))])
    later = datetime.now(UTC) + timedelta(days=31)
    assert store.prune_inbox(now=later) == 2
    result, _ = store.apply([old])  # redelivered after its id was forgotten
    assert (result.applied, result.stale) == (1, 1)
    assert store.current_meeting("appt_1")["status"] == "created"  # type: ignore[index]
