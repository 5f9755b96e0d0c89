"""A sweep skips a listed row the mirror holds as listed (``Unchanged``) exactly when the
comparison of its ``Event`` would find no drift.

The oracle is the comparison every listed row went through before (and every fetched one still
does): ``drift`` of the event, its dead credentials dropped, against ``Store.snapshots``' row.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meetsync.events import Event, Meeting
from meetsync.store.mirror import SNAPSHOT_FIELDS
from meetsync.worker.reconciler import (
    _dead_fields,
    _same,
    _without_dead_credentials,
    drift,
    snapshot_of,
)

NOW = "2025-03-02T15:30:00Z"
TEXT = st.sampled_from([None, "a", "b"])
EXPIRY = st.sampled_from([None, "2025-03-02T15:29:59Z", NOW, "2025-03-02T15:30:01Z"])
MEETINGS = st.one_of(st.none(), st.builds(
    Meeting, id=st.sampled_from(["m1", "m2"]), status=st.sampled_from(["created", "failed"]),
    conferencing_provider=TEXT, external_meeting_id=TEXT, join_url=TEXT, host_url=TEXT,
    password=TEXT, error_message=TEXT, host_url_expires_at=EXPIRY, password_expires_at=EXPIRY,
))
EVENTS = st.builds(
    Event, id=st.just("e"), provider=st.just("savvycal"), type=st.just("reconcile"),
    occurred_at=st.just(1), appointment_id=st.just("appt_1"), appointment_status=TEXT,
    start_at=st.sampled_from([None, "2025-03-01T15:00:00Z"]),
    end_at=st.sampled_from([None, "2025-03-01T15:30:00Z"]), meeting=MEETINGS,
)


def listed(event: Event) -> tuple[object, ...]:
    """What the provider gives ``Unchanged`` for the row ``event`` was built from."""
    m = event.meeting
    expiries = (None, None) if m is None else (m.host_url_expires_at, m.password_expires_at)
    return (*snapshot_of(event).values(), *expiries)


@settings(max_examples=800, deadline=None)
@given(EVENTS, st.data())
def test_same_is_no_drift(event: Event, data: st.DataObject) -> None:
    mine = snapshot_of(event)
    # The mirror's row: the event's values, some changed, some purged; or no row at all.
    changed = data.draw(st.sets(st.sampled_from(SNAPSHOT_FIELDS), max_size=3))
    held: dict[str, Any] | None = None if data.draw(st.integers(0, 9)) == 0 else {
        name: data.draw(st.sampled_from([None, "a", "m1", "created"])) if name in changed
        else value for name, value in mine.items()}
    was = not drift(snapshot_of(_without_dead_credentials(event, NOW)), held,
                    skip=_dead_fields(event, NOW))
    row = None if held is None else tuple(held[name] for name in SNAPSHOT_FIELDS)
    assert _same(listed(event), row, NOW) == was
