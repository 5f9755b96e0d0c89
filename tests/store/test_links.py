"""A meeting hosted on another provider the mirror also holds links to that provider's own
meeting, whose credentials are served by the same rules as its own: live only while current,
until they expire, and only while the linking meeting is itself served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meetsync.events import Event, Meeting, iso_utc
from meetsync.store import Store, open_store

HOSTED = "85746065432"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def booking(event_id: str, at: int, *, status: str = "scheduled",
            external: str | None = HOSTED) -> Event:
    """Provider a's appointment, its meeting hosted on provider b."""
    return Event(
        id=event_id, provider="a", type="appointment.updated", occurred_at=at,
        appointment_id="appt_a", appointment_status=status, end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id="amtg_a", status="created", conferencing_provider="b",
                        external_meeting_id=external, join_url="https://a/j"),
    )


def hosted(event_id: str, at: int, *, expires: datetime | None = None,
           status: str = "scheduled", meeting_id: str = HOSTED, provider: str = "b") -> Event:
    """Provider b's own meeting (keyed by its numeric id, as its appointment is)."""
    return Event(
        id=event_id, provider=provider, type="meeting.updated", occurred_at=at,
        appointment_id=meeting_id, appointment_status=status, end_at="2099-01-01T00:00:00Z",
        meeting=Meeting(id=meeting_id, status="created", external_meeting_id=HOSTED,
                        join_url="https://b/j", host_url="https://b/start",
                        host_url_expires_at=expires and iso_utc(expires)),
    )


def mirror(path: Path, *events: Event) -> Path:
    with open_store(path, clock=lambda: T0) as store:
        store.apply(list(events))
    return path


def linked(store: Store, **kwargs: Any) -> dict[str, Any] | None:
    own = store.current_meeting("appt_a", provider="a")
    assert own is not None
    return store.linked_meeting(own, **kwargs)


def test_a_hosted_meeting_links_to_the_provider_that_mirrors_it(tmp_path: Path) -> None:
    path = mirror(tmp_path / "m.db", booking("evt_1", 1), hosted("evt_1", 1))
    with open_store(path, clock=lambda: T0) as store:
        link = linked(store)
        assert link is not None
        assert (link["provider"], link["id"], link["host_url"], link["appointment_id"]) == (
            "b", HOSTED, "https://b/start", HOSTED)
        assert link["host_url_refresh_pending"] is False
        own_of_b = store.current_meeting(HOSTED, provider="b")
        assert own_of_b is not None and store.linked_meeting(own_of_b) is None


def test_no_link_without_a_matching_meeting_of_another_provider(tmp_path: Path) -> None:
    path = mirror(
        tmp_path / "m.db", booking("evt_1", 1),
        hosted("evt_3", 1, provider="a"),  # a's own meeting with that id: not another provider
        hosted("evt_2", 1, meeting_id="1234"),  # b's, hosted elsewhere: id differs
    )
    with open_store(path, clock=lambda: T0) as store:
        assert store.current_meeting(HOSTED, provider="a") is not None
        assert store.current_meeting("1234", provider="b") is not None
        assert linked(store) is None
    path = mirror(tmp_path / "n.db", booking("evt_1", 1, external=None), hosted("evt_1", 1))
    with open_store(path, clock=lambda: T0) as store:
        assert linked(store) is None


def test_an_expired_linked_host_url_is_never_served(tmp_path: Path) -> None:
    path = mirror(tmp_path / "m.db", booking("evt_1", 1),
                  hosted("evt_1", 1, expires=T0 + timedelta(hours=1)))
    with open_store(path, clock=lambda: T0 + timedelta(minutes=59)) as store:
        link = linked(store)
        assert link is not None and link["host_url"] == "https://b/start"
    with open_store(path, clock=lambda: T0 + timedelta(hours=1)) as store:
        link = linked(store)
        assert link is not None and link["host_url"] is None
        assert link["host_url_refresh_pending"] is False
        link = linked(store, refreshable={"b"})
        assert link is not None and link["host_url"] is None
        assert link["host_url_refresh_pending"] is True


def test_linked_credentials_follow_both_meetings_liveness(tmp_path: Path) -> None:
    path = mirror(tmp_path / "m.db", booking("evt_1", 1), hosted("evt_1", 1),
                  hosted("evt_2", 2, status="canceled"))
    with open_store(path, clock=lambda: T0) as store:
        link = linked(store, refreshable={"b"})
        assert link is not None and link["host_url"] is None  # b's appointment is canceled
    path = mirror(tmp_path / "n.db", booking("evt_1", 1), hosted("evt_1", 1),
                  booking("evt_2", 2, status="canceled"))
    with open_store(path, clock=lambda: T0) as store:
        link = linked(store, refreshable={"b"})
        assert link is not None and link["id"] == HOSTED
        assert (link["host_url"], link["password"], link["host_url_refresh_pending"]) == (
            None, None, False)  # a's appointment is canceled: nothing is served through it
