"""Any delivery order, with any duplicates, ends in the state in-order delivery reaches."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import Event, Meeting
from meetsync.store import open_store

STEPS = ("create", "rotate", "fail", "replace", "replace_silent", "reschedule", "cancel")


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """The true event history of a few appointments: lifecycles with replacements and ties."""
    events: list[Event] = []
    for a in range(draw(st.integers(1, 4))):
        appt = f"appt_{a:012d}"
        at = draw(st.integers(0, 5))
        n_meeting = 0
        m = Meeting(id=f"amtg_{a:06d}{n_meeting:06d}", status="pending")
        status, start = "scheduled", 100
        snaps = [("appointment.created", m, None, status, start)]
        for step in draw(st.lists(st.sampled_from(STEPS), max_size=6)):
            prev = None
            kind = "appointment.meeting.updated"
            if step == "create":
                m = replace(m, status="created", join_url=f"https://j/{m.id}",
                            host_url=f"https://h/{m.id}/0", password=f"pw{m.id}")
            elif step == "rotate":
                m = replace(m, host_url=f"{m.host_url}r")
            elif step == "fail":
                m = replace(m, status="failed", error_message="zoom said no")
                kind = "appointment.meeting.create_failed"
            elif step.startswith("replace"):
                n_meeting += 1
                prev = m.id if step == "replace" else None
                m = Meeting(id=f"amtg_{a:06d}{n_meeting:06d}", status="pending")
                kind = "appointment.meeting.replaced"
            elif step == "reschedule":
                start += 60
                kind = "appointment.rescheduled"
            else:
                status, m = "canceled", replace(m, status="cancel_pending")
                kind = "appointment.canceled"
            snaps.append((kind, m, prev, status, start))
        for i, (kind, snap, prev, st_, start_) in enumerate(snaps):
            at += draw(st.integers(0, 3))  # 0: an exact tie with the previous event
            events.append(Event(
                id=f"evt_{a}_{i}_{draw(st.integers(0, 9))}", provider="savvycal", type=kind,
                occurred_at=at, appointment_id=appt, appointment_status=st_,
                start_at=f"2099-01-01T{start_ // 60:02d}:{start_ % 60:02d}:00Z",
                end_at="2099-01-02T00:00:00Z", meeting=snap, previous_meeting_id=prev,
            ))
    return events


def state(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    with closing(sqlite3.connect(path)) as conn:
        return _state(conn)


def _state(conn: sqlite3.Connection) -> tuple[list[tuple[object, ...]], ...]:
    return (
        conn.execute("SELECT id, meeting_id, status, start_at, end_at, version_at, "
                     "version_event, tie_at FROM appointments ORDER BY id").fetchall(),
        conn.execute("SELECT id, appointment_id, status, conferencing_provider, "
                     "external_meeting_id, join_url, host_url, password, error_message, "
                     "replaced_by, first_seen_at, first_seen_rank, version_at, version_event "
                     "FROM meetings ORDER BY id").fetchall(),
        conn.execute("SELECT id FROM events ORDER BY id").fetchall(),
    )


def deliver(path: Path, deliveries: list[Event], cuts: list[int]) -> None:
    store = open_store(path)
    start = 0
    for cut in [*sorted(cuts), len(deliveries)]:
        store.apply(deliveries[start:cut])
        start = max(start, cut)
    store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), history=histories())
def test_any_order_with_duplicates_converges_to_in_order_state(
    data: st.DataObject, history: list[Event]
) -> None:
    history = list({e.id: e for e in history}.values())
    shuffled = data.draw(st.permutations(history))
    dupes = data.draw(st.lists(st.sampled_from(history), max_size=len(history)))
    deliveries = data.draw(st.permutations(shuffled + dupes))
    cuts = data.draw(st.lists(st.integers(0, len(deliveries)), max_size=4))

    with tempfile.TemporaryDirectory() as tmp:
        in_order, chaos = Path(tmp) / "in_order.db", Path(tmp) / "chaos.db"
        for e in sorted(history, key=lambda e: (e.occurred_at, e.id)):
            deliver(in_order, [e], [])
        deliver(chaos, deliveries, cuts)
        assert state(chaos) == state(in_order)
        check_against_truth(chaos, history)


def check_against_truth(path: Path, history: list[Event]) -> None:
    """Beyond agreement: the mirror holds what the provider's last word was."""
    store = open_store(path)
    for appt in {e.appointment_id for e in history}:
        own = [e for e in history if e.appointment_id == appt]
        truth = own[-1]  # histories() lists each appointment's events in true order
        tied = len({e.occurred_at for e in own}) < len(own)
        current = store.current_meeting(appt)
        assert current is not None
        chain = [store.meeting(m) for m in dict.fromkeys(e.meeting.id for e in own if e.meeting)]
        assert sum(1 for m in chain if m and m["replaced_by"] is None) == 1
        assert all(m["host_url"] is None and m["password"] is None
                   for m in chain if m and m["replaced_by"] is not None)
        if tied:
            continue
        assert truth.meeting is not None
        assert current["id"] == truth.meeting.id
        assert (current["status"], current["host_url"], current["password"]) == (
            truth.meeting.status, truth.meeting.host_url, truth.meeting.password)
        assert store.appointment(appt)["status"] == truth.appointment_status  # type: ignore[index]
    store.close()
