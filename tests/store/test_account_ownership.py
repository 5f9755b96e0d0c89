"""An appointment belongs to the account it was first received under (store/apply.py): for
any interleaving, batching and duplication of two accounts' events for the same appointment
ids, the owner is the account of the first event applied for it, and the rows are exactly
those the owner's events alone make; every other account's event is an account conflict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.events import Event
from meetsync.store import ApplyResult, open_store
from tests.sql import query
from tests.store.test_order_property import histories, state

ACCOUNTS = ("acme", "beta")


def deliver(path: Path | str, deliveries: list[Event], cuts: list[int]) -> ApplyResult:
    total = ApplyResult()
    with open_store(path) as store:
        start = 0
        for cut in [*sorted(cuts), len(deliveries)]:
            result, failures = store.apply(deliveries[start:cut])
            assert failures == []
            total.add(result)
            start = max(start, cut)
    return total


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), acme=histories(), beta=histories())
def test_the_first_account_applied_owns_the_appointment_and_no_other_changes_it(
    data: st.DataObject, acme: list[Event], beta: list[Event],
    new_mirror: Callable[[], Path | str],
) -> None:
    # Both accounts send events for the same appointment ids (appt_0..., the same meeting ids
    # too); event ids are each account's own.
    history = [replace(e, id=f"{account}:{e.id}", account=account)
               for account, events in zip(ACCOUNTS, (acme, beta), strict=True)
               for e in events]
    history = list({e.id: e for e in history}.values())
    dupes = data.draw(st.lists(st.sampled_from(history), max_size=len(history)))
    deliveries = data.draw(st.permutations(history + dupes))
    cuts = data.draw(st.lists(st.integers(0, len(deliveries)), max_size=4))

    owner: dict[str, str] = {}
    for e in deliveries:  # batches apply their events in order
        owner.setdefault(e.appointment_id, e.account)
    owned = [e for e in history if owner[e.appointment_id] == e.account]
    foreign = {e.id for e in history} - {e.id for e in owned}

    mixed, alone = new_mirror(), new_mirror()
    result = deliver(mixed, deliveries, cuts)
    deliver(alone, sorted(owned, key=lambda e: (e.occurred_at, e.id)), [])

    assert dict(query(mixed, "SELECT id, account FROM appointments")) == owner
    rows, alone_rows = state(mixed), state(alone)
    assert rows[:-1] == alone_rows[:-1]  # appointments, participants, occurrences, meetings
    assert len(result.account_conflicts) == len(foreign)
    assert {(c.owner, c.sender) for c in result.account_conflicts} <= {
        ("acme", "beta"), ("beta", "acme")}
    assert sorted(query(mixed, "SELECT id, account, outcome FROM events"
                               " WHERE outcome = 'account_conflict'")) == sorted(
        (e.id, e.account, "account_conflict") for e in history if e.id in foreign)
    assert sorted(query(mixed, "SELECT id, account FROM events"
                               " WHERE outcome <> 'account_conflict'")) == sorted(
        query(alone, "SELECT id, account FROM events"))
