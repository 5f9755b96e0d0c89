"""Deliveries to a real subscriber that verifies every request with the official
``standardwebhooks`` package, under faults: every change arrives, in order, retries carry
the same webhook-id, a 410 disables, a change failing past the horizon is dead-lettered, and
one subscriber's failures never delay another's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import REGISTRY

from meetsync.settings import Subscriber
from meetsync.store import open_store
from meetsync.store import subscribers as cursors
from meetsync.store.views import entity_view
from meetsync.worker.subscribers import Deliveries, webhook_id
from tests.subscribers.conftest import (
    NEXT_SECRET,
    SECRET,
    assert_in_order,
    changes,
    event,
    eventually,
    settings_for,
    write,
)
from tests.subscribers.receiver import Fault, Receiver

Make = Callable[..., Receiver]
Start = Callable[..., Deliveries]


def all_acknowledged(receiver: Receiver, db: Path | str) -> Callable[[], bool]:
    def check() -> bool:
        wanted = {webhook_id("s1", c["seq"]) for c in changes(db)}
        return bool(wanted) and wanted <= {r.webhook_id for r in receiver.acknowledged()}
    return check


def sample(name: str, subscriber: str = "s1") -> float:
    """A subscriber metric of this process (0 when not yet recorded)."""
    return REGISTRY.get_sample_value(name, {"subscriber": subscriber}) or 0.0


def cursor_at_end(db: Path | str, name: str = "s1") -> Callable[[], bool]:
    def check() -> bool:
        with open_store(db, readonly=True) as store:
            cursor = cursors.cursor(store, name)
            return cursor is not None and cursor["seq"] == changes(db)[-1]["seq"]
    return check


async def test_every_change_arrives_signed_in_order_under_faults(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    faults = {
        2: Fault("status", 500),
        3: Fault("reset"),
        4: Fault("hang", seconds=5),  # past the 1 s timeout
        5: Fault("slow", seconds=0.3),
        6: Fault("status", 503, headers=(("Retry-After", "1"),)),
        7: Fault("status", 429),
    }

    def decide(msg_id: str, times: int) -> Fault:
        seq = int(msg_id.rsplit("_", 1)[1])
        return faults.get(seq, Fault()) if times == 0 else Fault()

    receiver = receivers(SECRET, NEXT_SECRET, decide=decide)
    write(db_path, *(event(n, n % 3) for n in range(1, 6)))
    subscriber = Subscriber("s1", receiver.url, (SECRET, NEXT_SECRET))
    deliver(settings_for(db_path, subscriber))
    await eventually(all_acknowledged(receiver, db_path))

    receiver.down()  # the subscriber is down for a while: the log waits for it
    write(db_path, *(event(n, n % 3) for n in range(6, 12)))
    await asyncio.sleep(1.0)
    receiver.up()
    await eventually(all_acknowledged(receiver, db_path))

    assert receiver.unverified == 0
    assert_in_order(receiver)
    assert all(r.signatures == 2 for r in receiver.requests)  # one per secret
    for seq, fault in faults.items():
        tries = receiver.attempts(webhook_id("s1", seq))
        assert len(tries) == (1 if fault.kind == "slow" else 2), (seq, fault)
        assert {r.body["id"] for r in tries} == {webhook_id("s1", seq)}
    retried = receiver.attempts(webhook_id("s1", 6))
    assert len(retried) == 2  # Retry-After: the one retry waited for it
    await eventually(cursor_at_end(db_path))
    with open_store(db_path, readonly=True) as store:
        cursor = cursors.cursor(store, "s1")
        assert cursor is not None
        assert cursor["failed"] >= len(faults) - 1
        assert cursor["sent"] == len(changes(db_path))


async def test_body_is_the_read_apis_view(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    receiver = receivers()
    write(db_path, event(1, 1, participants=2))
    sent_before = sample("meetsync_subscriber_sent_total")
    deliver(settings_for(db_path, Subscriber("s1", receiver.url, (SECRET,))))
    await eventually(all_acknowledged(receiver, db_path))
    await eventually(lambda: sample("meetsync_subscriber_lag_seq") == 0)
    assert sample("meetsync_subscriber_sent_total") - sent_before == len(changes(db_path))
    assert sample("meetsync_subscriber_lag_seconds") == 0
    with open_store(db_path, readonly=True) as store:
        for received in receiver.acknowledged():
            body = received.body
            change = next(c for c in changes(db_path) if c["seq"] == body["seq"])
            assert body["type"] == f"{change['entity']}.changed"
            assert (body["provider"], body["account"], body["appointment_id"],
                    body["changed_at"]) == ("savvycal", "default", "appt_1",
                                            change["changed_at"])
            expected = entity_view(store, change["entity"], "savvycal", "appt_1",
                                   change["entity_id"], frozenset())
            assert body["data"] == expected
    types = {r.body["type"] for r in receiver.acknowledged()}
    assert types == {"appointment.changed", "meeting.changed", "participant.changed"}
    meeting = next(r.body["data"] for r in receiver.acknowledged()
                   if r.body["type"] == "meeting.changed")
    assert meeting["host_url"] is not None  # http:// on loopback: a developer's receiver


async def test_a_gone_entity_is_sent_as_null(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    receiver = receivers()
    # Two batches: within one, p1's arrival and departure fold into no change at all (the
    # change log records what a committed state shows; see tests/store/test_fold_equivalence.py).
    write(db_path, event(1, 1, participants=2))
    write(db_path, event(2, 1, participants=1))  # p1 leaves
    deliver(settings_for(db_path, Subscriber("s1", receiver.url, (SECRET,))))
    await eventually(all_acknowledged(receiver, db_path))
    left = [r.body for r in receiver.acknowledged()
            if r.body["type"] == "participant.changed" and r.body["data"] is None]
    assert len(left) == 2  # p1's insert and its delete: both see it gone now


async def test_410_disables_until_enabled(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    gone = [True]
    receiver = receivers(decide=lambda _id, _n: Fault("status", 410) if gone[0] else Fault())
    write(db_path, event(1, 1), event(2, 2))
    deliver(settings_for(db_path, Subscriber("s1", receiver.url, (SECRET,))))

    def disabled() -> bool:
        with open_store(db_path, readonly=True) as store:
            cursor = cursors.cursor(store, "s1")
            return cursor is not None and cursor["disabled_at"] is not None

    await eventually(disabled)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1  # nothing more once disabled
    gone[0] = False
    with open_store(db_path) as store:
        assert cursors.enable(store, "s1")
    await eventually(all_acknowledged(receiver, db_path))
    assert_in_order(receiver)


async def test_a_change_failing_past_the_horizon_is_dead_lettered(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    poison = webhook_id("s1", 2)
    receiver = receivers(decide=lambda msg_id, _n: Fault("status", 500) if msg_id == poison
                         else Fault())
    write(db_path, event(1, 1), event(2, 2))
    deliver(settings_for(db_path, Subscriber("s1", receiver.url, (SECRET,)),
                         subscriber_retry_seconds=1))
    last = changes(db_path)[-1]["seq"]

    def past_it() -> bool:
        acked = {r.webhook_id for r in receiver.acknowledged()}
        return webhook_id("s1", last) in acked

    await eventually(past_it)
    with open_store(db_path, readonly=True) as store:
        letters = cursors.dead_letters(store, "s1")
    assert [(d["seq"], d["webhook_id"]) for d in letters] == [(2, poison)]
    assert letters[0]["attempts"] >= 2
    assert "500" in letters[0]["reason"]
    assert_in_order(receiver)


async def test_one_subscribers_failures_never_delay_another(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    stuck = receivers(decide=lambda _id, _n: Fault("hang", seconds=30))
    fine = receivers()
    write(db_path, *(event(n, n) for n in range(1, 4)))
    deliver(settings_for(db_path, Subscriber("stuck", stuck.url, (SECRET,)),
                         Subscriber("s1", fine.url, (SECRET,)), subscriber_timeout_seconds=30))
    began = time.monotonic()
    await eventually(all_acknowledged(fine, db_path), patience=10)
    assert time.monotonic() - began < 5
    assert not stuck.acknowledged()


async def test_filters_skip_what_a_subscriber_does_not_want(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    receiver = receivers()
    write(db_path, *(event(n, n) for n in range(1, 4)))
    subscriber = Subscriber("s1", receiver.url, (SECRET,), providers=("savvycal",),
                            accounts=("default",), types=("meeting",))
    deliver(settings_for(db_path, subscriber))
    meetings = [c["seq"] for c in changes(db_path) if c["entity"] == "meeting"]

    await eventually(cursor_at_end(db_path))
    assert [r.body["seq"] for r in receiver.acknowledged()] == meetings
    assert {r.body["type"] for r in receiver.requests} == {"meeting.changed"}


async def test_one_worker_at_a_time_delivers_a_subscriber(
    db_path: Path | str, receivers: Make, deliver: Start,
) -> None:
    receiver = receivers(decide=lambda _id, _n: Fault("slow", seconds=0.02))
    write(db_path, *(event(n, n % 4) for n in range(1, 30)))
    # a lease long enough that a busy machine never lets it lapse while its holder lives
    settings = settings_for(db_path, Subscriber("s1", receiver.url, (SECRET,)),
                            subscriber_lease_seconds=10)
    first, second = deliver(settings), deliver(settings)
    await eventually(all_acknowledged(receiver, db_path))
    assert_in_order(receiver)
    assert len(receiver.requests) == len(changes(db_path))  # no change sent twice
    await first.stop()  # the holder goes (releasing its lease): the other takes over
    write(db_path, *(event(n, n % 4) for n in range(30, 35)))
    await eventually(all_acknowledged(receiver, db_path), patience=10)
    assert_in_order(receiver)
    assert second.tasks
