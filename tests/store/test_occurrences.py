"""A recurring appointment's occurrences are those of the newest snapshot that listed them,
whatever the order events arrive in; the change log records each real change to them, and
nothing else. The same rule as participants (test_participants.py), under its own version."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from meetsync.events import Event, Meeting, Occurrence, Participant
from meetsync.store import Store, open_store
from meetsync.store.migrations import SQLITE as migrations

FIXTURE = Path(__file__).parents[1] / "data" / "mirror-0.1.0.sqlite3"

WEEK_1 = Occurrence("1001", "2099-01-01T15:00:00Z", "2099-01-01T15:30:00Z", "available")
WEEK_2 = Occurrence("1002", "2099-01-08T15:00:00Z", "2099-01-08T15:30:00Z", "available")
WEEK_3 = Occurrence("1003", "2099-01-15T15:00:00Z", "2099-01-15T15:30:00Z", "available")
UNTIMED = Occurrence("0999")


def event(
    event_id: str, at: int, occurrences: tuple[Occurrence, ...] | None, *,
    appt: str = "appt_1", provider: str = "prov", status: str = "scheduled",
    participants: tuple[Participant, ...] | None = None,
) -> Event:
    return Event(
        id=event_id, provider=provider, type="appointment.updated", occurred_at=at,
        appointment_id=appt, appointment_status=status, end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id=f"m_{appt}", status="created"), occurrences=occurrences,
        participants=participants,
    )


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with open_store(db_path) as store:
        yield store


def ids(store: Store, appt: str = "appt_1", provider: str = "prov") -> list[str]:
    return [o["id"] for o in store.occurrences(appt, provider=provider)]


def occurrence_changes(store: Store, since: int = 0) -> list[tuple[str, str, str]]:
    return [(c["provider"], c["entity_id"], c["appointment_id"])
            for c in store.changes_since(since) if c["entity"] == "occurrence"]


def last_seq(store: Store) -> int:
    return int(store.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])


def test_the_event_round_trips_through_json() -> None:
    sent = event("evt_1", 10, (WEEK_1, UNTIMED))
    assert Event.from_json(sent.to_json()) == sent
    silent = event("evt_2", 10, None)
    assert Event.from_json(silent.to_json()).occurrences is None
    assert Event.from_json(event("evt_3", 10, ()).to_json()).occurrences == ()


def test_a_winning_snapshot_sets_exactly_its_occurrences(store: Store) -> None:
    store.apply([event("evt_1", 10, (WEEK_2, WEEK_1))])
    assert store.occurrences("appt_1", provider="prov") == [
        {"id": "1001", "start_at": "2099-01-01T15:00:00Z", "end_at": "2099-01-01T15:30:00Z",
         "status": "available"},
        {"id": "1002", "start_at": "2099-01-08T15:00:00Z", "end_at": "2099-01-08T15:30:00Z",
         "status": "available"},
    ]
    assert sorted(occurrence_changes(store)) == [
        ("prov", "1001", "appt_1"), ("prov", "1002", "appt_1")]

    seen = last_seq(store)
    cancelled = Occurrence("1002", WEEK_2.start_at, WEEK_2.end_at, "deleted")
    store.apply([event("evt_2", 20, (WEEK_1, cancelled, WEEK_3))])
    assert ids(store) == ["1001", "1002", "1003"]
    # Week 1 is unchanged: no row for it.
    assert sorted(occurrence_changes(store, seen)) == [
        ("prov", "1002", "appt_1"), ("prov", "1003", "appt_1")]
    assert store.occurrences("appt_1", provider="prov")[1]["status"] == "deleted"

    seen = last_seq(store)
    store.apply([event("evt_3", 30, (WEEK_3,))])
    assert ids(store) == ["1003"]
    assert sorted(occurrence_changes(store, seen)) == [
        ("prov", "1001", "appt_1"), ("prov", "1002", "appt_1")]

    seen = last_seq(store)
    store.apply([event("evt_4", 40, ())])  # an empty list says there are none
    assert ids(store) == []
    assert occurrence_changes(store, seen) == [("prov", "1003", "appt_1")]


def test_occurrences_are_read_by_start_then_id(store: Store) -> None:
    same_start = Occurrence("0001", WEEK_2.start_at, WEEK_2.end_at, "available")
    store.apply([event("evt_1", 10, (WEEK_3, UNTIMED, WEEK_2, same_start, WEEK_1))])
    assert ids(store) == ["1001", "0001", "1002", "1003", "0999"]  # unknown start last


def test_a_stale_snapshot_or_one_that_says_nothing_changes_nothing(store: Store) -> None:
    store.apply([event("evt_2", 20, (WEEK_1,))])
    seen = last_seq(store)
    store.apply([event("evt_1", 10, (WEEK_2, WEEK_3))])  # older
    store.apply([event("evt_0", 20, (WEEK_2,))])  # same instant, smaller event id
    store.apply([event("evt_3", 30, None, status="rescheduled")])  # newer, silent on them
    store.apply([event("evt_2", 20, (WEEK_3,))])  # a redelivery (the inbox has it)
    assert ids(store) == ["1001"]
    assert occurrence_changes(store, seen) == []
    appointment = store.appointment("appt_1", provider="prov")
    assert appointment is not None and appointment["status"] == "rescheduled"


def test_a_list_newer_than_the_last_list_applies_even_when_its_appointment_is_stale(
    store: Store,
) -> None:
    store.apply([event("evt_1", 10, (WEEK_1,)), event("evt_3", 30, None, status="rescheduled")])
    result, _ = store.apply([event("evt_2", 20, (WEEK_2,), status="scheduled")])
    assert result.stale == 1
    assert ids(store) == ["1002"]
    appointment = store.appointment("appt_1", provider="prov")
    assert appointment is not None and appointment["status"] == "rescheduled"


def test_occurrences_and_participants_keep_their_own_versions(store: Store) -> None:
    """A snapshot listing participants only is no newer word on occurrences, and the reverse."""
    host = Participant("p_host", role="host")
    store.apply([event("evt_1", 10, (WEEK_1,), participants=(host,)),
                 event("evt_2", 20, None, participants=()),
                 event("evt_3", 30, (WEEK_2,))])
    store.apply([event("evt_0", 15, (WEEK_3,), participants=(host,))])  # older than both
    assert ids(store) == ["1002"]
    assert store.participants("appt_1", provider="prov") == []
    row = store.conn.execute(
        "SELECT occurrences_at, occurrences_event, participants_at, participants_event"
        " FROM appointments").fetchone()
    assert row == (30, "evt_3", 20, "evt_2")


def test_each_provider_and_appointment_keeps_its_own(store: Store) -> None:
    store.apply([event("evt_1", 10, (WEEK_1,)), event("evt_1", 10, (WEEK_2,), provider="other"),
                 event("evt_2", 10, (WEEK_3,), appt="appt_2")])
    store.apply([event("evt_3", 20, ())])
    assert ids(store) == []
    assert ids(store, provider="other") == ["1002"]
    assert ids(store, appt="appt_2") == ["1003"]
    assert store.occurrences("appt_9", provider="prov") == []


def test_events_without_occurrences_write_none(store: Store) -> None:
    store.apply([event("evt_1", 10, None), event("evt_2", 20, None)])
    row = store.conn.execute(
        "SELECT occurrences_at, occurrences_event FROM appointments").fetchone()
    assert row == (None, None)
    assert store.conn.execute("SELECT COUNT(*) FROM occurrences").fetchone() == (0,)


def test_a_mirror_from_release_0_1_gains_occurrences(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    shutil.copyfile(FIXTURE, path)
    with open_store(path) as store:  # migrates
        assert "m007_occurrences" in [m.name for m in migrations.applied(Database(store.conn))]
        appt, provider = store.conn.execute(
            "SELECT id, provider FROM appointments ORDER BY id LIMIT 1").fetchone()
        assert store.conn.execute(
            "SELECT COUNT(*) FROM appointments WHERE occurrences_at IS NOT NULL"
        ).fetchone() == (0,)
        assert store.occurrences(appt, provider=provider) == []
        seen = last_seq(store)
        store.apply([Event(id="evt_new", provider=provider, type="appointment.updated",
                           occurred_at=2**62, appointment_id=appt, occurrences=(WEEK_1,))])
        assert ids(store, appt, provider) == ["1001"]
        assert occurrence_changes(store, seen) == [(provider, "1001", appt)]


# --- any order ------------------------------------------------------------------------------

POOL = (WEEK_1, WEEK_2, WEEK_3, UNTIMED,
        Occurrence("1001", WEEK_1.start_at, WEEK_1.end_at, "deleted"),
        Occurrence("1002", "2099-01-09T15:00:00Z", "2099-01-09T16:00:00Z", "available"))


@st.composite
def snapshots(draw: st.DrawFn) -> list[Event]:
    """Events for two appointments (two providers share one id), with colliding instants,
    each listing occurrences (possibly none) or saying nothing about them."""
    events = []
    for n in range(draw(st.integers(1, 10))):
        appt, provider = draw(st.sampled_from(
            [("appt_1", "prov"), ("appt_2", "prov"), ("appt_1", "other")]))
        listed = draw(st.one_of(
            st.none(), st.lists(st.sampled_from(POOL), max_size=4, unique_by=lambda o: o.id)))
        events.append(event(f"evt_{n}", draw(st.integers(0, 4)),
                            None if listed is None else tuple(listed),
                            appt=appt, provider=provider))
    return events


def expected(events: list[Event]) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    """Each appointment's occurrences: those of its greatest (occurred_at, id) event that
    listed them."""
    newest: dict[tuple[str, str], Event] = {}
    for e in sorted(events, key=lambda e: (e.occurred_at, e.id)):
        if e.occurrences is not None:
            newest[(e.provider, e.appointment_id)] = e
    return {key: sorted((o.id, o.start_at, o.end_at, o.status) for o in e.occurrences or ())
            for key, e in newest.items()}


def held(path: Path) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    with closing(sqlite3.connect(path)) as conn:
        listed = conn.execute(
            "SELECT provider, id FROM appointments WHERE occurrences_at IS NOT NULL").fetchall()
        return {
            (provider, appt): conn.execute(
                "SELECT id, start_at, end_at, status FROM occurrences"
                " WHERE provider = :provider AND appointment_id = :appt ORDER BY id",
                {"provider": provider, "appt": appt}).fetchall()
            for provider, appt in listed
        }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=snapshots())
def test_any_order_and_batching_ends_with_the_newest_list(
    sqlite_template: Path, data: st.DataObject, events: list[Event]
) -> None:
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    deliveries = data.draw(st.permutations(events + dupes))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(deliveries)), max_size=3)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mirror.db"
        shutil.copyfile(sqlite_template, path)  # a new, migrated mirror
        with open_store(path) as store:
            start = 0
            for cut in [*cuts, len(deliveries)]:
                store.apply(deliveries[start:cut])
                start = max(start, cut)
        assert held(path) == expected(events)
