"""An appointment's participants are those of the newest snapshot that listed them, whatever the
order events arrive in; the change log records each real change to them, and nothing else."""

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

from meetsync.events import Event, Meeting, Participant
from meetsync.store import Store, open_store
from meetsync.store.migrations import SQLITE as migrations

FIXTURE = Path(__file__).parents[1] / "data" / "mirror-0.1.0.sqlite3"

HOST = Participant("p_host", role="host", unique_id="u1", display_name="Ann")
GUEST = Participant("p_guest", role="attendee", unique_id="u2", display_name="Bob")
OTHER = Participant("p_other", role="attendee", display_name="Cy")


def event(
    event_id: str, at: int, participants: tuple[Participant, ...] | None, *,
    appt: str = "appt_1", provider: str = "prov", status: str = "scheduled",
) -> Event:
    return Event(
        id=event_id, provider=provider, type="appointment.updated", occurred_at=at,
        appointment_id=appt, appointment_status=status, end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id=f"m_{appt}", status="created"), participants=participants,
    )


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with open_store(db_path) as store:
        yield store


def ids(store: Store, appt: str = "appt_1", provider: str = "prov") -> list[str]:
    return [p["id"] for p in store.participants(appt, provider=provider)]


def participant_changes(store: Store, since: int = 0) -> list[tuple[str, str, str]]:
    return [(c["provider"], c["entity_id"], c["appointment_id"])
            for c in store.changes_since(since) if c["entity"] == "participant"]


def last_seq(store: Store) -> int:
    return int(store.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])


def test_a_winning_snapshot_sets_exactly_its_participants(store: Store) -> None:
    store.apply([event("evt_1", 10, (GUEST, HOST))])
    assert store.participants("appt_1", provider="prov") == [
        {"id": "p_guest", "role": "attendee", "unique_id": "u2", "display_name": "Bob"},
        {"id": "p_host", "role": "host", "unique_id": "u1", "display_name": "Ann"},
    ]
    assert sorted(participant_changes(store)) == [
        ("prov", "p_guest", "appt_1"), ("prov", "p_host", "appt_1")]

    seen = last_seq(store)
    renamed = Participant("p_guest", role="attendee", unique_id="u2", display_name="Robert")
    store.apply([event("evt_2", 20, (HOST, renamed, OTHER))])
    assert ids(store) == ["p_guest", "p_host", "p_other"]
    # The host is unchanged: no row for it.
    assert sorted(participant_changes(store, seen)) == [
        ("prov", "p_guest", "appt_1"), ("prov", "p_other", "appt_1")]
    assert store.participants("appt_1", provider="prov")[0]["display_name"] == "Robert"

    seen = last_seq(store)
    store.apply([event("evt_3", 30, (OTHER,))])
    assert ids(store) == ["p_other"]
    assert sorted(participant_changes(store, seen)) == [
        ("prov", "p_guest", "appt_1"), ("prov", "p_host", "appt_1")]

    seen = last_seq(store)
    store.apply([event("evt_4", 40, ())])  # an empty list says there are none
    assert ids(store) == []
    assert participant_changes(store, seen) == [("prov", "p_other", "appt_1")]


def test_a_stale_snapshot_or_one_that_says_nothing_changes_nothing(store: Store) -> None:
    store.apply([event("evt_2", 20, (HOST,))])
    seen = last_seq(store)
    store.apply([event("evt_1", 10, (GUEST, OTHER))])  # older
    store.apply([event("evt_0", 20, (GUEST,))])  # same instant, smaller event id
    store.apply([event("evt_3", 30, None, status="rescheduled")])  # newer, silent on them
    store.apply([event("evt_2", 20, (OTHER,))])  # a redelivery (the inbox has it)
    assert ids(store) == ["p_host"]
    assert participant_changes(store, seen) == []
    appointment = store.appointment("appt_1", provider="prov")
    assert appointment is not None and appointment["status"] == "rescheduled"


def test_a_list_newer_than_the_last_list_applies_even_when_its_appointment_is_stale(
    store: Store,
) -> None:
    """The appointment's newest snapshot said nothing about participants: a late snapshot that
    did, newer than the last one that did, is their newest word."""
    store.apply([event("evt_1", 10, (HOST,)), event("evt_3", 30, None, status="rescheduled")])
    result, _ = store.apply([event("evt_2", 20, (GUEST,), status="scheduled")])
    assert result.stale == 1
    assert ids(store) == ["p_guest"]
    appointment = store.appointment("appt_1", provider="prov")
    assert appointment is not None and appointment["status"] == "rescheduled"


def test_each_provider_and_appointment_keeps_its_own(store: Store) -> None:
    store.apply([event("evt_1", 10, (HOST,)), event("evt_1", 10, (GUEST,), provider="other"),
                 event("evt_2", 10, (OTHER,), appt="appt_2")])
    store.apply([event("evt_3", 20, ())])
    assert ids(store) == []
    assert ids(store, provider="other") == ["p_guest"]
    assert ids(store, appt="appt_2") == ["p_other"]
    assert store.participants("appt_9", provider="prov") == []


def test_events_without_participants_write_none(store: Store) -> None:
    store.apply([event("evt_1", 10, None), event("evt_2", 20, None)])
    row = store.conn.execute(
        "SELECT participants_at, participants_event FROM appointments").fetchone()
    assert row == (None, None)
    assert store.conn.execute("SELECT COUNT(*) FROM participants").fetchone() == (0,)


def test_a_mirror_from_release_0_1_gains_participants(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    shutil.copyfile(FIXTURE, path)
    with open_store(path) as store:  # migrates
        assert "m006_participants" in [
            m.name for m in migrations.applied(Database(store.conn))]
        appt, provider = store.conn.execute(
            "SELECT id, provider FROM appointments ORDER BY id LIMIT 1").fetchone()
        assert store.conn.execute(
            "SELECT COUNT(*) FROM appointments WHERE participants_at IS NOT NULL"
        ).fetchone() == (0,)
        assert store.participants(appt, provider=provider) == []
        seen = last_seq(store)
        store.apply([Event(id="evt_new", provider=provider, type="appointment.updated",
                           occurred_at=2**62, appointment_id=appt, participants=(HOST,))])
        assert ids(store, appt, provider) == ["p_host"]
        assert participant_changes(store, seen) == [(provider, "p_host", appt)]


# --- any order ------------------------------------------------------------------------------

POOL = (HOST, GUEST, OTHER, Participant("p_host", role="cohost", unique_id="u1",
                                        display_name="Ann"))


@st.composite
def snapshots(draw: st.DrawFn) -> list[Event]:
    """Events for two appointments (two providers share one id), with colliding instants,
    each listing participants (possibly none) or saying nothing about them."""
    events = []
    for n in range(draw(st.integers(1, 10))):
        appt, provider = draw(st.sampled_from(
            [("appt_1", "prov"), ("appt_2", "prov"), ("appt_1", "other")]))
        listed = draw(st.one_of(
            st.none(), st.lists(st.sampled_from(POOL), max_size=3, unique_by=lambda p: p.id)))
        events.append(event(f"evt_{n}", draw(st.integers(0, 4)),
                            None if listed is None else tuple(listed),
                            appt=appt, provider=provider))
    return events


def expected(events: list[Event]) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    """Each appointment's participants: those of its greatest (occurred_at, id) event that
    listed them."""
    newest: dict[tuple[str, str], Event] = {}
    for e in sorted(events, key=lambda e: (e.occurred_at, e.id)):
        if e.participants is not None:
            newest[(e.provider, e.appointment_id)] = e
    return {key: sorted((p.id, p.role, p.unique_id, p.display_name) for p in e.participants or ())
            for key, e in newest.items()}


def held(path: Path) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    with closing(sqlite3.connect(path)) as conn:
        listed = conn.execute(
            "SELECT provider, id FROM appointments WHERE participants_at IS NOT NULL").fetchall()
        return {
            (provider, appt): conn.execute(
                "SELECT id, role, unique_id, display_name FROM participants"
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
