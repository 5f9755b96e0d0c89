"""Any delivery order, with any duplicates, ends in the state in-order delivery reaches; with one
reconcile after it, that state is the provider's truth, whatever the provider's clock said
(participants and occurrences included: each snapshot lists them or says nothing about
them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import Event, Meeting, Occurrence, Participant, iso_utc, received
from meetsync.store import open_store
from tests.sql import query

STEPS = ("create", "rotate", "fail", "replace", "replace_silent", "reschedule", "cancel",
         "detach")
TOLERANCE = 5  # the receiver's clock-skew tolerance, in this test's time units
FAR = 10**15  # ~30 years of microseconds: a provider clock gone wrong
# A credential's expiry as its provider package gives it: none, long dead, or alive for years.
EXPIRIES = (None, "2000-01-01T00:00:00Z", "2099-01-03T00:00:00Z")
ACCOUNTS = ("default", "acme")
PEOPLE = (Participant("p_1", role="host", display_name="Ann"),
          Participant("p_1", role="attendee", display_name="Ann"),
          Participant("p_2", role="attendee", unique_id="u2", display_name="Bob"),
          Participant("p_3", role="attendee"))
SERIES = (Occurrence("o_1", "2099-01-01T10:00:00Z", "2099-01-01T11:00:00Z", "available"),
          Occurrence("o_1", "2099-01-01T10:00:00Z", "2099-01-01T11:00:00Z", "deleted"),
          Occurrence("o_2", "2099-01-08T10:00:00Z", "2099-01-08T11:00:00Z", "available"),
          Occurrence("o_3"))


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """The true event history of a few appointments, as received: lifecycles with replacements,
    detached and re-attached meetings, ties, and events dated far in the future or past by a bad
    clock (re-dated to their receipt by ``received`` when too far ahead)."""
    events: list[Event] = []
    for a in range(draw(st.integers(1, 4))):
        appt = f"appt_{a:012d}"
        # One account sends an appointment's events (another account's are not applied:
        # tests/store/test_account_ownership.py).
        account = draw(st.sampled_from(ACCOUNTS))
        at = draw(st.integers(0, 5))
        n_meeting = 0
        m: Meeting | None = Meeting(id=f"amtg_{a:06d}{n_meeting:06d}", status="pending")
        status, start = "scheduled", 100
        snaps: list[tuple[str, Meeting | None, str | None, str, int]] = [
            ("appointment.created", m, None, status, start)]
        for step in draw(st.lists(st.sampled_from(STEPS), max_size=6)):
            prev = None
            kind = "appointment.meeting.updated"
            if m is None or step.startswith("replace"):
                n_meeting += 1  # a detached appointment's next meeting is a new one
                prev = m.id if m is not None and step == "replace" else None
                m = Meeting(id=f"amtg_{a:06d}{n_meeting:06d}", status="pending")
                kind = "appointment.meeting.replaced" if prev else kind
            elif step == "create":
                m = replace(m, status="created", join_url=f"https://j/{m.id}",
                            host_url=f"https://h/{m.id}/0", password=f"pw{m.id}",
                            host_url_expires_at=draw(st.sampled_from(EXPIRIES)),
                            password_expires_at=draw(st.sampled_from(EXPIRIES)))
            elif step == "rotate":
                m = replace(m, host_url=f"{m.host_url}r",
                            host_url_expires_at=draw(st.sampled_from(EXPIRIES)))
            elif step == "fail":
                m = replace(m, status="failed", error_message="zoom said no")
                kind = "appointment.meeting.create_failed"
            elif step == "reschedule":
                start += 60
                kind = "appointment.rescheduled"
            elif step == "detach":
                m = None
            else:
                status, m = "canceled", replace(m, status="cancel_pending")
                kind = "appointment.canceled"
            snaps.append((kind, m, prev, status, start))
        for i, (kind, snap, prev, st_, start_) in enumerate(snaps):
            at += draw(st.integers(0, 3))  # 0: an exact tie with the previous event
            event = Event(
                id=f"evt_{a}_{i}_{draw(st.integers(0, 9))}", provider="savvycal", type=kind,
                occurred_at=at, appointment_id=appt, appointment_status=st_,
                start_at=f"2099-01-01T{start_ // 60:02d}:{start_ % 60:02d}:00Z",
                end_at="2099-01-02T00:00:00Z", meeting=snap, previous_meeting_id=prev,
                no_meeting=snap is None, account=account,
                participants=draw(st.one_of(st.none(), st.lists(
                    st.sampled_from(PEOPLE), max_size=3, unique_by=lambda p: p.id).map(tuple))),
                occurrences=draw(st.one_of(st.none(), st.lists(
                    st.sampled_from(SERIES), max_size=3, unique_by=lambda o: o.id).map(tuple))),
            )
            arrival = at + draw(st.integers(0, 3))
            if draw(st.integers(0, 5)) == 0:  # the provider's clock for this one is way off
                event = replace(event, occurred_at=at + draw(st.sampled_from([FAR, -FAR])))
            events.append(received(event, arrival, TOLERANCE))
    return events


def reconciled(history: list[Event]) -> list[Event]:
    """One API snapshot per appointment, fetched after every delivery arrived: the provider's
    truth (each appointment's last true snapshot) stamped with the fetch time."""
    fetched = max(e.received_at or 0 for e in history) + 1
    last = {e.appointment_id: e for e in history}  # histories() keeps each one's true order
    return [
        replace(e, id=f"reconcile:{e.appointment_id}", type="reconcile", occurred_at=fetched,
                previous_meeting_id=None, received_at=None, claimed_at=None)
        for e in last.values()
    ]


def state(path: Path | str) -> tuple[list[tuple[object, ...]], ...]:
    return (
        query(path, "SELECT provider, id, account, meeting_id, status, start_at, end_at, "
                     "version_at, version_event, tie_at, no_meeting, named_meeting_id, "
                     "participants_at, participants_event, occurrences_at, occurrences_event "
                     "FROM appointments ORDER BY provider, id"),
        query(path, "SELECT provider, appointment_id, id, role, unique_id, display_name "
                     "FROM participants ORDER BY provider, appointment_id, id"),
        query(path, "SELECT provider, appointment_id, id, start_at, end_at, status "
                     "FROM occurrences ORDER BY provider, appointment_id, id"),
        query(path, "SELECT provider, id, appointment_id, status, conferencing_provider, "
                     "external_meeting_id, join_url, host_url, password, host_url_expires_at, "
                     "password_expires_at, error_message, replaced_by, first_seen_at, "
                     "first_seen_rank, version_at, version_event "
                     "FROM meetings ORDER BY provider, id"),
        query(path, "SELECT provider, id FROM events ORDER BY provider, id"),
    )


def deliver(path: Path | str, deliveries: list[Event], cuts: list[int]) -> None:
    store = open_store(path)
    start = 0
    for cut in [*sorted(cuts), len(deliveries)]:
        store.apply(deliveries[start:cut])
        start = max(start, cut)
    store.close()


# The rules are the same SQL on both backends: SQLite explores widely, PostgreSQL (ten times
# slower per example here) checks a sample of the same histories well within the timeout.
EXAMPLES = {"sqlite": 150, "postgresql": 50}


@pytest.mark.timeout(240)  # ~15 s (SQLite) and ~35 s alone, up to 70 s beside other workers
def test_any_order_with_duplicates_converges_to_in_order_state(
    backend: str, new_mirror: Callable[[], Path | str]
) -> None:
    @settings(max_examples=EXAMPLES[backend], deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), history=histories())
    def check(data: st.DataObject, history: list[Event]) -> None:
        history = list({e.id: e for e in history}.values())
        shuffled = data.draw(st.permutations(history))
        dupes = data.draw(st.lists(st.sampled_from(history), max_size=len(history)))
        deliveries = data.draw(st.permutations(shuffled + dupes))
        cuts = data.draw(st.lists(st.integers(0, len(deliveries)), max_size=4))

        in_order, chaos = new_mirror(), new_mirror()
        ordered = sorted(history, key=lambda e: (e.occurred_at, e.id))
        deliver(in_order, ordered, list(range(1, len(ordered))))  # one event per batch
        deliver(chaos, deliveries, cuts)
        assert state(chaos) == state(in_order)
        check_chains(chaos, history)
        deliver(chaos, reconciled(history), [])
        check_against_truth(chaos, history)

    check()


def check_chains(path: Path | str, history: list[Event]) -> None:
    """One meeting per chain not superseded, no credential on a superseded meeting, and none
    kept past its expiry."""
    store = open_store(path)
    dead = store.conn.execute(
        "SELECT id FROM meetings WHERE (host_url IS NOT NULL AND host_url_expires_at <= :now)"
        " OR (password IS NOT NULL AND password_expires_at <= :now)",
        {"now": iso_utc(datetime.now(UTC))},
    ).fetchall()
    assert dead == []
    for appt in {e.appointment_id for e in history}:
        own = [e for e in history if e.appointment_id == appt]
        chain = [store.meeting(m) for m in dict.fromkeys(e.meeting.id for e in own if e.meeting)]
        assert sum(1 for m in chain if m and m["replaced_by"] is None) == 1
        assert all(m["host_url"] is None and m["password"] is None
                   for m in chain if m and m["replaced_by"] is not None)
    store.close()


def check_against_truth(path: Path | str, history: list[Event]) -> None:
    """The mirror holds the provider's last word: its meeting (or none), its status, its account,
    and each credential only while it may be served (not canceled, not past its expiry)."""
    store = open_store(path)
    for appt in {e.appointment_id for e in history}:
        truth = [e for e in history if e.appointment_id == appt][-1]
        current = store.current_meeting(appt)
        appointment = store.appointment(appt)
        assert appointment is not None and appointment["status"] == truth.appointment_status
        assert appointment["account"] == truth.account
        assert not appointment["needs_refetch"]
        if truth.participants is not None:  # else the newest list stands (compared above)
            assert store.participants(appt, provider="savvycal") == sorted(
                ({"id": p.id, "role": p.role, "unique_id": p.unique_id,
                  "display_name": p.display_name} for p in truth.participants),
                key=lambda p: str(p["id"]))
        if truth.occurrences is not None:
            assert store.occurrences(appt, provider="savvycal") == sorted(
                ({"id": o.id, "start_at": o.start_at, "end_at": o.end_at, "status": o.status}
                 for o in truth.occurrences),
                key=lambda o: (o["start_at"] is None, o["start_at"] or "", o["id"]))
        if truth.meeting is None:
            assert current is None and appointment["meeting_id"] is None
            continue
        assert current is not None and current["id"] == truth.meeting.id
        served = truth.appointment_status != "canceled"
        m = truth.meeting
        assert (current["status"], current["host_url"], current["password"]) == (
            m.status,
            m.host_url if served and alive(m.host_url_expires_at) else None,
            m.password if served and alive(m.password_expires_at) else None,
        )
        assert (current["host_url_expires_at"], current["password_expires_at"]) == (
            m.host_url_expires_at, m.password_expires_at)
    store.close()


def alive(expires_at: str | None) -> bool:
    return expires_at is None or expires_at > iso_utc(datetime.now(UTC))
