"""The folded apply (store/apply.py) leaves the mirror exactly as the per-event apply it replaced
(tests/store/per_event.py) does, for any history, delivered in any order, with duplicates, in
any batches: the same rows, the same results; its change log names each entity that really
changed in a batch, once (the per-event one may name an entity more than once, or one that
changed and changed back)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import Event, gone
from meetsync.store import Store, apply, open_store
from tests.store import per_event
from tests.store.test_order_property import ACCOUNTS, histories

EXAMPLES = {"sqlite": 100, "postgresql": 30}

# Every column apply writes, but the clock's (updated_at, applied_at, changed_at) and seq.
TABLES = {
    "appointments": ("provider, id, account, owner_known, meeting_id, status, start_at, end_at, "
                     "version_at, version_event, tie_at, no_meeting, named_meeting_id, "
                     "times_at, times_event, participants_at, participants_event, "
                     "occurrences_at, occurrences_event", "provider, id"),
    "meetings": ("provider, id, appointment_id, status, conferencing_provider, "
                 "external_meeting_id, join_url, host_url, password, host_url_expires_at, "
                 "password_expires_at, error_message, replaced_by, first_seen_at, "
                 "first_seen_rank, version_at, version_event, predecessor", "provider, id"),
    "participants": ("provider, appointment_id, id, role, unique_id, display_name",
                     "provider, appointment_id, id"),
    "occurrences": ("provider, appointment_id, id, start_at, end_at, status",
                    "provider, appointment_id, id"),
    "events": ("provider, id, appointment_id, type, occurred_at, claimed_at, account, outcome",
               "provider, id"),
}
# What the change log calls a visible change of each entity (store/schema.py's triggers).
VISIBLE = {
    "appointment": ("appointments", "provider, id, id", "meeting_id, status, start_at, end_at"),
    "meeting": ("meetings", "provider, id, appointment_id",
                "status, conferencing_provider, external_meeting_id, join_url, host_url, "
                "password, error_message, replaced_by"),
    "participant": ("participants", "provider, id, appointment_id",
                    "role, unique_id, display_name"),
    "occurrence": ("occurrences", "provider, id, appointment_id", "start_at, end_at, status"),
}

Mirror = dict[str, list[tuple[Any, ...]]]
Entity = tuple[Any, ...]  # (entity, provider, entity id, appointment id)


def query(store: Store, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in store.conn.execute(sql, params).fetchall()]


def rows(db: Store) -> Mirror:
    return {table: query(db, f"SELECT {columns} FROM {table} ORDER BY {key}")
            for table, (columns, key) in TABLES.items()}


def visible(db: Store) -> dict[Entity, tuple[Any, ...]]:
    """Each entity the change log follows, with the fields whose change it logs."""
    return {(entity, *row[:3]): row[3:]
            for entity, (table, key, fields) in VISIBLE.items()
            for row in query(db, f"SELECT {key}, {fields} FROM {table}")}


def logged(db: Store, after: int) -> tuple[list[Entity], int]:
    found = query(db, "SELECT entity, provider, entity_id, appointment_id, seq FROM changes"
                      " WHERE seq > ? ORDER BY seq", (after,))
    return [row[:4] for row in found], max((row[4] for row in found), default=after)


def batch(store: Store, events: list[Event], fold: bool, now: datetime) -> tuple[Any, ...]:
    """One batch in one transaction, as ``Store.apply`` runs it, by either apply."""
    store.conn.execute(store.dialect.begin)
    store.dialect.lock_appointments(store.conn, ((e.provider, e.appointment_id) for e in events))
    result: Any = (apply.apply_events if fold else per_event.apply_events)(
        store.conn, events, now)
    store.conn.execute("COMMIT")
    return (result.applied, result.duplicates, result.stale, result.ties,
            [asdict(c) for c in result.conflicts], [asdict(c) for c in result.account_conflicts])


@st.composite
def deliveries(draw: st.DrawFn) -> list[Event]:
    """Histories of tests/store/test_order_property.py, some events altered into every shape an
    ``Event`` can take: sent through the other account, naming another appointment's meeting,
    of a second provider, silent on times or on the meeting, a deletion; then shuffled with
    duplicates."""
    history = list({e.id: e for e in draw(histories())}.values())
    appointments = sorted({e.appointment_id for e in history})
    altered = []
    for event in history:
        match draw(st.integers(0, 12)):
            case 0:
                other = ACCOUNTS[1 - ACCOUNTS.index(event.account)]
                event = replace(event, account=other)
            case 1:
                event = replace(event, appointment_id=draw(st.sampled_from(appointments)))
            case 2:
                event = replace(event, provider="zoom")
            case 3:
                event = replace(event, start_at=None, end_at=None)
            case 4:
                event = replace(event, meeting=None, no_meeting=False)
            case 5:
                event = gone(event.id, event.provider, event.appointment_id, event.occurred_at,
                             type="gone", account=event.account)
            case 6:
                event = replace(event, no_meeting=True)  # and still names a meeting
        altered.append(event)
    dupes = draw(st.lists(st.sampled_from(altered), max_size=len(altered)))
    return draw(st.permutations(altered + dupes))


def test_folded_apply_matches_the_per_event_apply(
    backend: str, new_mirror: Callable[[], Path | str]
) -> None:
    @settings(max_examples=EXAMPLES[backend], deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), events=deliveries())
    def check(data: st.DataObject, events: list[Event]) -> None:
        cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
        forget = data.draw(st.sampled_from([None, *range(len(cuts) + 1)]))
        now = datetime.now(UTC)
        seqs = [0, 0]
        with open_store(new_mirror()) as oracle, open_store(new_mirror()) as folded:
            for n, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(events)], strict=True)):
                if n == forget:  # rows from before m010: their owner unknown
                    for store in (oracle, folded):
                        store.conn.execute("UPDATE appointments SET owner_known = 0")
                part = events[start:end]
                if not part:
                    continue
                before = visible(folded)
                expected = batch(oracle, part, False, now)
                assert batch(folded, part, True, now) == expected
                assert rows(folded) == rows(oracle)
                after = visible(folded)
                changed = {key for key in before.keys() | after.keys()
                           if before.get(key) != after.get(key)}
                oracle_log, seqs[0] = logged(oracle, seqs[0])
                folded_log, seqs[1] = logged(folded, seqs[1])
                assert set(folded_log) == changed <= set(oracle_log)
                assert max(Counter(folded_log).values(), default=1) == 1

    check()
