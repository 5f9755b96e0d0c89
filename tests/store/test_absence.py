"""Absence is a state: a snapshot with no meeting detaches it (no credential kept or served), a
later meeting re-attaches; canceled appointments serve no credential; a credential dead on arrival
is never written; a meeting id named by two appointments stays with the first and is reported;
the inbox prune forgets only what is old."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meetsync.events import Event, Meeting
from meetsync.store import Store, open_store
from tests.sql import query as sql_query

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
END = "2030-06-02T00:00:00Z"


def meeting(mid: str, host: str | None = "https://h/x", expires: str | None = None) -> Meeting:
    return Meeting(id=mid, status="created", join_url=f"https://j/{mid}", host_url=host,
                   password="pw" if host else None, host_url_expires_at=expires,
                   password_expires_at=expires)


def snapshot(eid: str, at: int, m: Meeting | None, *, status: str = "scheduled",
             end: str = END) -> Event:
    return Event(id=eid, provider="savvycal", type="appointment.meeting.updated", occurred_at=at,
                 appointment_id="appt_1", appointment_status=status,
                 start_at="2030-06-01T23:00:00Z", end_at=end, meeting=m, no_meeting=m is None)


def raw(db_path: Path | str, sql: str) -> list[Any]:
    return sql_query(db_path, sql)


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    """The mirror at a fixed "now" (NOW)."""
    with open_store(db_path, clock=lambda: NOW) as store:
        yield store


def test_a_snapshot_without_a_meeting_detaches_it(store: Store, db_path: Path) -> None:
    store.apply([snapshot("evt_1", 10, meeting("amtg_a", "https://h/a"))])
    seq = store.changes_since(0)[-1]["seq"]
    store.apply([snapshot("evt_2", 20, None)])
    assert store.current_meeting("appt_1") is None
    assert store.appointment("appt_1")["meeting_id"] is None  # type: ignore[index]
    # The old meeting keeps its row, with no live credential, in the table and on the API.
    assert raw(db_path, "SELECT id, host_url, password, replaced_by FROM meetings") == [
        ("amtg_a", None, None, None)]
    assert store.meeting("amtg_a")["host_url"] is None  # type: ignore[index]
    assert raw(db_path, "SELECT host_url FROM live_meetings") == [(None,)]
    assert ("appointment", "appt_1") in {
        (c["entity"], c["entity_id"]) for c in store.changes_since(seq)}


def test_detached_in_any_order_with_a_late_update_of_the_old_meeting(
    new_mirror: Callable[[], Path | str],
) -> None:
    events = [snapshot("evt_1", 10, meeting("amtg_a", "https://h/1")), snapshot("evt_3", 30, None),
              snapshot("evt_2", 20, meeting("amtg_a", "https://h/2"))]
    for order in ([0, 1, 2], [1, 2, 0], [2, 1, 0]):
        path = new_mirror()
        with open_store(path, clock=lambda: NOW) as store:
            for i in order:
                store.apply([events[i]])
            assert store.current_meeting("appt_1") is None
            assert raw(path, "SELECT host_url, password FROM meetings") == [(None, None)]


def test_a_later_meeting_re_attaches(store: Store, db_path: Path) -> None:
    store.apply([snapshot("evt_1", 10, meeting("amtg_a", "https://h/a")),
                 snapshot("evt_2", 20, None)])
    store.apply([snapshot("evt_3", 30, meeting("amtg_a", "https://h/a2"))])
    current = store.current_meeting("appt_1")
    assert current is not None and (current["id"], current["host_url"]) == ("amtg_a", "https://h/a2")
    store.apply([snapshot("evt_4", 40, None), snapshot("evt_5", 50, meeting("amtg_b", "https://h/b"))])
    current = store.current_meeting("appt_1")
    assert current is not None and (current["id"], current["host_url"]) == ("amtg_b", "https://h/b")
    assert store.meeting("amtg_a")["replaced_by"] == "amtg_b"  # type: ignore[index]


def test_a_snapshot_that_does_not_say_keeps_the_meeting(store: Store, db_path: Path) -> None:
    store.apply([snapshot("evt_1", 10, meeting("amtg_a", "https://h/a"))])
    store.apply([replace(snapshot("evt_2", 20, None), no_meeting=False)])  # no `meeting` key
    assert store.current_meeting("appt_1")["host_url"] == "https://h/a"  # type: ignore[index]


def test_a_canceled_appointment_serves_no_credential(store: Store, db_path: Path) -> None:
    store.apply([snapshot("evt_1", 10, meeting("amtg_a", "https://h/a"), status="canceled")])
    current = store.current_meeting("appt_1")
    assert current is not None and (current["host_url"], current["password"]) == (None, None)
    assert raw(db_path, "SELECT host_url, password FROM live_meetings") == [(None, None)]


def test_a_credential_dead_on_arrival_is_never_written(store: Store, db_path: Path) -> None:
    dead = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")  # dies at NOW: already dead
    store.apply([snapshot("evt_1", 10, meeting("amtg_a", "https://h/dead", dead))])
    assert raw(db_path, "SELECT host_url, password, join_url FROM meetings") == [
        (None, None, "https://j/amtg_a")]
    alive = (NOW + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.apply([snapshot("evt_2", 20, meeting("amtg_a", "https://h/alive", alive))])
    assert raw(db_path, "SELECT host_url, host_url_expires_at FROM meetings") == [
        ("https://h/alive", alive)]
    # A late update carrying the old expiry is stale; the newest snapshot's expiry decides.
    store.apply([snapshot("evt_3", 15, meeting("amtg_a", "https://h/x", dead))])
    assert raw(db_path, "SELECT host_url, host_url_expires_at FROM meetings") == [
        ("https://h/alive", alive)]


@pytest.mark.sqlite_only  # walks rowid; PostgreSQL's prune reads its applied_at index
def test_the_inbox_prune_forgets_only_old_ids(store: Store) -> None:
    store.apply([snapshot(f"evt_{n}", n, None) for n in range(5)])
    conn = store.conn
    conn.execute("UPDATE events SET applied_at = '2030-02-28T00:00:00.000Z'")
    conn.execute("UPDATE events SET applied_at = '2030-01-01T00:00:00.000Z' WHERE id IN "
                 "('evt_0', 'evt_1', 'evt_3')")  # evt_3 is old but sits after a newer row
    pruned = store.prune_inbox(now=datetime(2030, 3, 1, tzinfo=UTC))
    assert pruned == 2
    assert [r[0] for r in conn.execute("SELECT id FROM events ORDER BY rowid")] == [
        "evt_2", "evt_3", "evt_4"]
    assert store.prune_inbox(now=datetime(2031, 1, 1, tzinfo=UTC)) == 3


def test_the_inbox_prune_keeps_recent_ids_and_forgets_old_ones_in_time(store: Store) -> None:
    store.apply([snapshot(f"evt_{n}", n, None) for n in range(5)])
    store.conn.execute("UPDATE events SET applied_at = '2030-02-28T00:00:00.000Z'")
    store.conn.execute("UPDATE events SET applied_at = '2030-01-01T00:00:00.000Z'"
                       " WHERE id IN ('evt_0', 'evt_1', 'evt_3')")
    store.prune_inbox(now=datetime(2030, 3, 1, tzinfo=UTC))
    kept = {r[0] for r in store.conn.execute("SELECT id FROM events")}
    assert {"evt_2", "evt_4"} <= kept and not kept & {"evt_0", "evt_1"}
    store.prune_inbox(now=datetime(2031, 1, 1, tzinfo=UTC))
    assert store.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_meeting_named_by_another_appointment_stays_with_its_own(store: Store) -> None:
    store.apply([snapshot("evt_1", 10, meeting("amtg_a", "https://h/a"))])
    other = replace(snapshot("evt_2", 20, meeting("amtg_a", "https://h/stolen")),
                    appointment_id="appt_2")
    result, failures = store.apply([other])
    assert failures == [] and [(c.meeting_id, c.held_by, c.named_by) for c in result.conflicts] == [
        ("amtg_a", "appt_1", "appt_2")]
    assert store.current_meeting("appt_1")["host_url"] == "https://h/a"  # type: ignore[index]
    assert store.appointment("appt_2")["meeting_id"] is None  # type: ignore[index]
