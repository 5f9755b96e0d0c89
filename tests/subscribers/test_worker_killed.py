"""A real worker process SIGKILLed mid-send: another worker takes the subscriber over when
the lease lapses, sends the change in flight again with the same webhook-id, and then the
rest; every change arrives, in order, verified by the official library."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from meetsync.dev.redis_server import RedisServer
from meetsync.worker.subscribers import webhook_id
from tests.faults.conftest import Processes, stack_env
from tests.helpers.savvycal import savvycal_settings
from tests.subscribers.conftest import (
    SECRET,
    assert_in_order,
    changes,
    event,
    eventually,
    write,
)
from tests.subscribers.receiver import Fault, Receiver


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    found = Processes(tmp_path)
    yield found
    found.stop_all()


async def test_a_worker_killed_mid_send_loses_nothing(
    tmp_path: Path, redis_server: RedisServer, redis: Redis, processes: Processes,
) -> None:
    db = tmp_path / "mirror.db"
    write(db, *(event(n, n % 3) for n in range(1, 8)))
    in_flight = 5  # the first worker sends it and is killed before any answer

    def decide(msg_id: str, times: int) -> Fault:
        if msg_id == webhook_id("default", in_flight) and times == 0:
            return Fault("hang", seconds=60)
        return Fault()

    receiver = Receiver((SECRET,), decide=decide).start()
    try:
        settings = savvycal_settings(db_path=str(db), redis_url=redis_server.url,
                                     savvycal_webhook_secrets=("native-secret",),
                                     savvycal_api_url="http://127.0.0.1:9/v1")
        env = stack_env(settings, MEETSYNC_SUBSCRIBER_URL=receiver.url,
                        MEETSYNC_SUBSCRIBER_SECRET=SECRET, MEETSYNC_SUBSCRIBER_BACKOFF_MS="50",
                        MEETSYNC_SUBSCRIBER_TIMEOUT_SECONDS="120",
                        MEETSYNC_SUBSCRIBER_LEASE_SECONDS="1")
        first = processes.spawn("worker", env, "worker-1")
        await eventually(lambda: bool(receiver.attempts(webhook_id("default", in_flight))),
                         patience=60)
        processes.kill(first)  # SIGKILL, mid-send: no answer came, the cursor did not move

        processes.spawn("worker", env, "worker-2")
        write(db, *(event(n, n % 3) for n in range(8, 12)))
        wanted = {webhook_id("default", c["seq"]) for c in changes(db)}
        await eventually(lambda: wanted <= {r.webhook_id for r in receiver.acknowledged()},
                         patience=60)
    finally:
        receiver.stop()
    assert receiver.unverified == 0
    assert_in_order(receiver)
    again = receiver.attempts(webhook_id("default", in_flight))
    assert len(again) == 2
    # the same change (its data: the entity as it is at each send)
    envelope = [{k: v for k, v in r.body.items() if k != "data"} for r in again]
    assert envelope[0] == envelope[1]
    assert "subscriber_claimed" in processes.log("worker-2")
