"""Times a snapshot does not give are not erased: ``start_at``/``end_at`` None says nothing (a
Zoom deletion carries none), and the mirror's times are those of the newest snapshot that gave
any, in whatever order the snapshots arrive. A deleted appointment's meetings read canceled,
with nothing to join or start."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import Event, Meeting, gone
from meetsync.store import Store, open_store
from tests.sql import query

FIXTURE = Path(__file__).parent.parent / "data" / "mirror-0.1.0.sqlite3"
T1 = ("2099-01-01T10:00:00Z", "2099-01-01T11:00:00Z")
T2 = ("2099-01-02T10:00:00Z", "2099-01-02T10:30:00Z")
T3 = ("2099-01-03T09:00:00Z", None)  # a start without an end: both are said


def snap(eid: str, at: int, times: tuple[str | None, str | None] | None,
         status: str = "scheduled") -> Event:
    start, end = times or (None, None)
    return Event(id=eid, provider="zoom", type="meeting.created", occurred_at=at,
                 appointment_id="85746065432", appointment_status=status, start_at=start,
                 end_at=end)


@pytest.fixture
def store(db_path: Path | str) -> Iterator[Store]:
    with open_store(db_path) as store:
        yield store


def times(store: Store) -> tuple[str | None, str | None]:
    found = store.appointment("85746065432", provider="zoom")
    assert found is not None
    return found["start_at"], found["end_at"]


def test_a_newer_snapshot_without_times_keeps_them(store: Store) -> None:
    store.apply([snap("created", 10, T1)])
    store.apply([snap("deleted", 20, None, status="deleted")])
    assert times(store) == T1
    assert store.appointment("85746065432", provider="zoom")["status"] == "deleted"  # type: ignore[index]


def test_an_older_snapshot_with_times_fills_what_a_newer_one_did_not_say(store: Store) -> None:
    store.apply([snap("deleted", 20, None, status="deleted")])
    assert times(store) == (None, None)
    store.apply([snap("created", 10, T1)])
    assert times(store) == T1
    assert store.appointment("85746065432", provider="zoom")["status"] == "deleted"  # type: ignore[index]
    store.apply([snap("older", 5, T2)])  # older than the times held: stale
    assert times(store) == T1


def test_times_are_said_as_a_pair(store: Store) -> None:
    store.apply([snap("a", 10, T1), snap("b", 20, T3)])
    assert times(store) == T3  # the end is said unknown, not kept from T1


def test_a_provider_404_keeps_the_times(store: Store) -> None:
    store.apply([snap("created", 10, T1)])
    store.apply([gone("refetch:1", "zoom", "85746065432", 30, type="refetch.gone")])
    assert times(store) == T1


def test_a_deleted_appointments_meetings_serve_nothing_live(
    store: Store, db_path: Path | str
) -> None:
    meeting = Meeting(id="85746065432", status="created", join_url="https://zoom.us/j/1",
                      host_url="https://zoom.us/s/1", password="pw")
    store.apply([Event(id="created", provider="zoom", type="meeting.created", occurred_at=10,
                       appointment_id="85746065432", appointment_status="scheduled",
                       start_at=T1[0], end_at=T1[1], meeting=meeting)])
    served = store.meeting("85746065432", provider="zoom")
    assert served is not None and served["join_url"] == "https://zoom.us/j/1"
    store.apply([gone("refetch:1", "zoom", "85746065432", 30, type="refetch.gone")])
    served = store.meeting("85746065432", provider="zoom")
    assert served is not None
    assert (served["status"], served["join_url"], served["host_url"], served["password"]) == (
        "canceled", None, None, None)
    assert store.current_meeting("85746065432", provider="zoom") is None
    assert query(db_path, "SELECT status, join_url, host_url, password FROM live_meetings") == [
        ("canceled", None, None, None)]
    assert query(db_path, "SELECT status, join_url FROM meetings") == [  # as received
        ("created", "https://zoom.us/j/1")]


@pytest.mark.sqlite_only
def test_a_mirror_from_release_0_1_knows_its_times_version(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    shutil.copyfile(FIXTURE, path)
    with open_store(path) as store:  # migrates
        rows = store.conn.execute(
            "SELECT provider, id, start_at, end_at, version_at, version_event, times_at,"
            " times_event FROM appointments").fetchall()
        assert rows and all(row[4:6] == row[6:8] for row in rows)
        provider, appointment_id, start, end = rows[0][:4]
        store.apply([Event(id="older", provider=provider, type="appointment.rescheduled",
                           occurred_at=rows[0][4] - 1, appointment_id=appointment_id,
                           appointment_status="scheduled", start_at=T2[0], end_at=T2[1])])
        after = store.appointment(appointment_id, provider=provider)
        assert after is not None and (after["start_at"], after["end_at"]) == (start, end)


# --- any order ------------------------------------------------------------------------------

TIMES = (None, T1, T2, T3)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """One appointment's snapshots, with or without times, with exact ties."""
    at, events = 0, []
    for n in range(draw(st.integers(1, 7))):
        at += draw(st.integers(0, 2))
        events.append(snap(f"evt_{n}_{draw(st.integers(0, 9))}", at, draw(st.sampled_from(TIMES)),
                           draw(st.sampled_from(("scheduled", "deleted")))))
    return events


def newest_timed(events: list[Event]) -> tuple[str | None, str | None]:
    timed = [e for e in events if e.start_at or e.end_at]
    if not timed:
        return None, None
    last = max(timed, key=lambda e: (e.occurred_at, e.id))
    return last.start_at, last.end_at


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=histories(), data=st.data())
def test_property_times_are_the_newest_timed_snapshots_in_any_order(
    new_mirror: Callable[[], Path | str], history: list[Event], data: st.DataObject
) -> None:
    """In order as appointment ``1``, in any order (in batches) as appointment ``2``."""
    arrival = data.draw(st.permutations(history))
    cuts = data.draw(st.lists(st.integers(0, len(arrival)), max_size=3))
    path = new_mirror()
    with open_store(path) as store:
        store.apply([replace(e, id=f"1:{e.id}", appointment_id="1") for e in history])
        start = 0
        for cut in [*sorted(cuts), len(arrival)]:
            store.apply([replace(e, id=f"2:{e.id}", appointment_id="2")
                         for e in arrival[start:cut]])
            start = max(start, cut)
    ends = query(path, "SELECT status, start_at, end_at FROM appointments ORDER BY id")
    assert ends[0] == ends[1]
    assert ends[0][1:] == newest_timed(history)
