"""Two providers using the same appointment, meeting and event ids stay apart: in the inbox, the
mirror's rows and reads, the change log and ``live_meetings``."""

from __future__ import annotations

from pathlib import Path

from meetsync.events import Event, Meeting
from meetsync.store import open_store


def event(
    provider: str, event_id: str, occurred_at: int, status: str, previous: str | None = None
) -> Event:
    return Event(
        id=event_id, provider=provider, type="appointment.meeting.updated",
        occurred_at=occurred_at, appointment_id="appt_1", appointment_status="scheduled",
        end_at="2099-01-01T00:00:00Z", previous_meeting_id=previous,
        meeting=Meeting(id="amtg_1", status=status, join_url=f"https://{provider}/j",
                        host_url=f"https://{provider}/h"),
    )


def two_providers(path: Path) -> Path:
    """SavvyCal and Avon Health each hold appt_1 with meeting amtg_1, each first applied under
    event id evt_1; Avon's replaced a meeting amtg_0."""
    with open_store(path) as store:
        result, failures = store.apply([
            event("savvycal", "evt_1", 10, "created"),
            event("avon", "evt_1", 20, "pending"),
        ])
        assert (result.applied, result.duplicates, result.conflicts, failures) == (2, 0, [], [])
        result, _ = store.apply([
            event("avon", "evt_2", 30, "created", previous="amtg_0"),
            event("savvycal", "evt_1", 10, "created"),  # a redelivery: SavvyCal's inbox has it
        ])
        assert (result.applied, result.duplicates) == (1, 1)
    return path


def test_each_provider_keeps_its_own_rows(tmp_path: Path) -> None:
    with open_store(two_providers(tmp_path / "mirror.db")) as store:
        savvycal = store.current_meeting("appt_1")
        avon = store.current_meeting("appt_1", provider="avon")
        assert savvycal is not None and avon is not None
        assert (savvycal["provider"], savvycal["status"], savvycal["join_url"]) == (
            "savvycal", "created", "https://savvycal/j")
        assert (avon["provider"], avon["status"], avon["join_url"]) == (
            "avon", "created", "https://avon/j")
        assert store.meeting("amtg_1", provider="zoom") is None
        assert store.meeting("amtg_0") is None  # Avon's predecessor is not SavvyCal's
        replaced = store.meeting("amtg_0", provider="avon")
        assert replaced is not None and replaced["replaced_by"] == "amtg_1"
        appointments = [store.appointment("appt_1", provider=p) for p in ("savvycal", "avon")]
        assert [a and a["provider"] for a in appointments] == ["savvycal", "avon"]
        assert store.appointments_ending_after("2000-01-01T00:00:00Z", provider="avon") == [
            "appt_1"]
        assert store.snapshots(["appt_1"], provider="avon")["appt_1"]["meeting.status"] == (
            "created")
        events = store.conn.execute(
            "SELECT provider, id FROM events ORDER BY rowid").fetchall()
        assert events == [("savvycal", "evt_1"), ("avon", "evt_1"), ("avon", "evt_2")]
        changes = store.changes_since(0)
        assert {(c["provider"], c["entity"], c["entity_id"]) for c in changes} == {
            ("savvycal", "appointment", "appt_1"), ("savvycal", "meeting", "amtg_1"),
            ("avon", "appointment", "appt_1"), ("avon", "meeting", "amtg_1"),
            ("avon", "meeting", "amtg_0"),
        }
        live = store.conn.execute(
            "SELECT provider, id, host_url FROM live_meetings ORDER BY provider, id").fetchall()
        assert live == [("avon", "amtg_0", None), ("avon", "amtg_1", "https://avon/h"),
                        ("savvycal", "amtg_1", "https://savvycal/h")]
