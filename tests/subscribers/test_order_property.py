"""Property: whatever the subscriber does to each attempt (answers 2xx, 5xx, 429 with a
Retry-After, drops the connection, answers late), and however the changes fall across
appointments, every change is acknowledged and each appointment's changes reach it in
``seq`` order, every retry under the same webhook-id."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from meetsync.dev.redis_server import RedisServer
from meetsync.settings import Subscriber
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.subscribers import Deliveries, webhook_id
from tests.subscribers.conftest import SECRET, changes, event, eventually, settings_for, write
from tests.subscribers.receiver import Fault, Receiver

FAULTS = st.sampled_from([
    Fault(), Fault(), Fault("status", 500), Fault("status", 502), Fault("reset"),
    Fault("status", 429, headers=(("Retry-After", "0"),)), Fault("slow", seconds=0.02),
    Fault("status", 404),
])
_names = itertools.count()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(appointments=st.lists(st.integers(1, 4), min_size=1, max_size=12),
       schedule=st.dictionaries(st.tuples(st.integers(1, 40), st.integers(0, 3)), FAULTS,
                                max_size=40))
def test_each_appointments_changes_arrive_in_order(
    new_mirror: Callable[[], Path | str], redis_server: RedisServer,
    appointments: list[int], schedule: dict[tuple[int, int], Fault],
) -> None:
    db = new_mirror()
    name = f"p{next(_names)}"

    def decide(msg_id: str, times: int) -> Fault:
        return schedule.get((int(msg_id.rsplit("_", 1)[1]), times), Fault())

    write(db, *(event(n, a) for n, a in enumerate(appointments, start=1)))
    logged = changes(db)
    receiver = Receiver((SECRET,), decide=decide).start()
    try:
        asyncio.run(_deliver_all(db, name, receiver, redis_server.url,
                                 {webhook_id(name, c["seq"]) for c in logged}))
    finally:
        receiver.stop()

    assert receiver.unverified == 0
    appointment_of = {c["seq"]: c["appointment_id"] for c in logged}
    per_appointment: dict[str, list[int]] = {}
    for r in receiver.requests:  # arrival order, retries included
        assert r.body["id"] == r.webhook_id == webhook_id(name, r.body["seq"])
        seqs = per_appointment.setdefault(appointment_of[r.body["seq"]], [])
        if not seqs or seqs[-1] != r.body["seq"]:
            seqs.append(r.body["seq"])
    for seqs in per_appointment.values():
        assert seqs == sorted(set(seqs)), seqs  # in order, and none again after a later one
    assert {r.body["seq"] for r in receiver.acknowledged()} == set(appointment_of)


async def _deliver_all(db: Path | str, name: str, receiver: Receiver, redis_url: str,
                       wanted: set[str]) -> None:
    redis = Redis.from_url(redis_url)
    store = StoreThread(lambda: open_store(db))
    deliveries = Deliveries(
        settings_for(db, Subscriber(name, receiver.url, (SECRET,)), subscriber_backoff_ms=5,
                     subscriber_backoff_max_seconds=1),
        redis, store)
    try:
        await eventually(lambda: wanted <= {r.webhook_id for r in receiver.acknowledged()},
                         patience=30, step=0.02)
    finally:
        await deliveries.stop()
        store.close()
        await redis.aclose()
