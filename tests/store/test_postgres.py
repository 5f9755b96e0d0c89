"""What PostgreSQL adds to the mirror: many writers at once, a change log followers can trust
in commit order (by ``seq`` or by ``LISTEN``), timeouts, and riding out a restart."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meetsync.dev.pg_server import PostgresServer
from meetsync.events import Event
from meetsync.store import Store, StoreBusy, open_store
from meetsync.store.apply import apply_events
from meetsync.store.postgres import CHANGES_CHANNEL, lock_appointments, translate
from tests.store.test_absence import NOW, meeting, snapshot
from tests.store.test_order_property import deliver, histories, state


@pytest.fixture
def pg(pg_server: PostgresServer) -> str:
    return pg_server.create_database(f"pg_{uuid.uuid4().hex}", template="mirror_template")


def for_appointment(event: Event, appointment: str) -> Event:
    from dataclasses import replace

    return replace(event, appointment_id=appointment)


def test_each_commit_notifies_listeners_of_its_highest_seq(pg: str) -> None:
    with psycopg.connect(pg, autocommit=True) as listener, open_store(pg) as store:
        listener.execute(f"LISTEN {CHANGES_CHANNEL}")
        highest = []
        for n, mid in enumerate(("amtg_a", "amtg_b")):
            store.apply([snapshot(f"evt_{n}", 10 * (n + 1), meeting(mid))])
            highest.append(max(c["seq"] for c in store.changes_since(0)))
        seqs = [int(n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
        assert seqs == highest and highest[0] < highest[1]


def test_a_follower_by_seq_never_misses_a_change_committed_late(pg: str) -> None:
    """Writer A logs its changes first but commits last: its rows must still come after
    everything a follower has already read (a plain sequence would number them before B's)."""
    with open_store(pg) as a, open_store(pg) as b, open_store(pg, readonly=True) as follower:
        a.conn.execute("BEGIN")
        lock_appointments(a.conn, [("savvycal", "appt_a")])
        apply_events(a.conn, [for_appointment(snapshot("evt_a", 10, meeting("amtg_a")),
                                              "appt_a")], NOW)
        b.apply([for_appointment(snapshot("evt_b", 10, meeting("amtg_b")), "appt_b")])
        read = follower.changes_since(0)
        assert {c["appointment_id"] for c in read} == {"appt_b"}
        a.conn.execute("COMMIT")
        late = follower.changes_since(read[-1]["seq"])
        assert {c["appointment_id"] for c in late} == {"appt_a"}


def test_the_change_log_survives_rollbacks_of_the_session_rows_it_keeps(pg: str) -> None:
    """Each statement logs into this session's temporary pending rows (p005): a rollback of the
    transaction that made them takes them along, a rolled-back savepoint its own rows only; the
    next change logs again, and a write by hand (no applier) logs as the applier's do."""
    with open_store(pg) as store:
        conn = store.conn
        conn.execute("BEGIN")  # the session's first change: it makes the pending rows' tables
        apply_events(conn, [snapshot("evt_1", 10, meeting("amtg_a"))], NOW)
        conn.execute("ROLLBACK")
        assert store.changes_since(0) == []
        store.apply([snapshot("evt_1", 10, meeting("amtg_a"))])
        logged = store.changes_since(0)
        assert sorted(c["entity"] for c in logged) == ["appointment", "meeting"]
        conn.execute("BEGIN")
        conn.execute("UPDATE meetings SET status = 'ended' WHERE id = 'amtg_a'")
        conn.execute("SAVEPOINT s")
        conn.execute("UPDATE appointments SET status = 'canceled'")
        conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("UPDATE appointments SET start_at = start_at")  # no visible change
        conn.execute("COMMIT")
        late = store.changes_since(logged[-1]["seq"])
        assert [(c["entity"], c["entity_id"]) for c in late] == [("meeting", "amtg_a")]


def test_a_lock_held_past_the_busy_timeout_raises_store_busy(pg: str) -> None:
    with open_store(pg) as holder, open_store(pg, busy_timeout=0.2) as waiter:
        holder.conn.execute("BEGIN")
        lock_appointments(holder.conn, [("savvycal", "appt_1")])
        with pytest.raises(StoreBusy):
            waiter.apply([snapshot("evt_1", 10, meeting("amtg_a"))])
        holder.conn.execute("ROLLBACK")
        result, failures = waiter.apply([snapshot("evt_1", 10, meeting("amtg_a"))])
        assert result.applied == 1 and failures == []


def _apply_retrying(store: Store, batch: list[Event]) -> None:
    while True:
        try:
            _, failures = store.apply(batch)
            assert failures == []
            return
        except StoreBusy:
            continue


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), history=histories())
def test_concurrent_writers_in_any_order_reach_the_in_order_state(
    data: st.DataObject, history: list[Event], pg_server: PostgresServer,
    new_mirror: Callable[[], Path | str],
) -> None:
    """Four writers apply shuffled, overlapping batches of one history at once (each batch
    touching several appointments, in opposite orders: the recipe for a lock cycle). No
    deadlock, no double apply, and the mirror ends as in-order application leaves it."""
    history = list({e.id: e for e in history}.values())
    in_order = new_mirror()
    for e in sorted(history, key=lambda e: (e.occurred_at, e.id)):
        deliver(in_order, [e], [])
    shared = pg_server.create_database(f"pg_{uuid.uuid4().hex}",
                                       template="mirror_template")
    batches = [data.draw(st.permutations(history + history[: len(history) // 2]))
               for _ in range(4)]
    errors: list[BaseException] = []

    def writer(events: list[Event]) -> None:
        try:
            with open_store(shared) as store:
                for start in range(0, len(events), 3):
                    _apply_retrying(store, events[start:start + 3])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert state(shared) == state(in_order)


def test_the_store_rides_out_a_server_restart(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg").start()
    try:
        url = server.create_database("mirror")
        with open_store(url) as store:
            store.apply([snapshot("evt_1", 10, meeting("amtg_a"))])
            server.restart()
            with pytest.raises(StoreBusy):  # the connection died with the old server
                store.apply([snapshot("evt_2", 20, meeting("amtg_b"))])
            result, _ = store.apply([snapshot("evt_2", 20, meeting("amtg_b"))])  # reconnected
            assert result.applied == 1
            assert store.current_meeting("appt_1")["id"] == "amtg_b"  # type: ignore[index]
            server.kill()
            with pytest.raises(StoreBusy):  # down: unreachable is busy, not an error
                store.apply([snapshot("evt_3", 30, meeting("amtg_c"))])
            server.start()
            assert store.apply([snapshot("evt_3", 30, meeting("amtg_c"))])[0].applied == 1
    finally:
        server.remove()


@pytest.mark.parametrize(("sqlite", "postgresql"), [
    ("a IS NOT NULL AND b IS NULL", "a IS NOT NULL AND b IS NULL"),
    ("a IS NOT b.c AND d IS 'x'", "a IS DISTINCT FROM b.c AND d IS NOT DISTINCT FROM 'x'"),
    ("meeting_id IS NOT ?", "meeting_id IS DISTINCT FROM %s"),
    ("o.meeting_id IS :meeting", "o.meeting_id IS NOT DISTINCT FROM %(meeting)s"),
    ("x = :a AND CAST(y AS text[]) = ?", "x = %(a)s AND CAST(y AS text[]) = %s"),
    ("id NOT IN (SELECT value FROM json_each(:ids))",
     "id NOT IN (SELECT value FROM jsonb_array_elements_text(%(ids)s))"),
    ("SELECT 'a%b' || ?::text", "SELECT 'a%%b' || %s::text"),
])
def test_statements_are_translated_into_postgresqls_dialect(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql
