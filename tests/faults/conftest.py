"""Fault-injection helpers: Redis servers we stop and start, worker processes we kill, a
simulated provider whose workload becomes queued events, and a mirror-vs-truth comparison."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError

from meetsync.dev.redis_server import RedisServer
from meetsync.events import Event, iso_utc, to_micros
from meetsync.providers.savvycal import appointment_event
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim
from meetsync.queue import backlog, publish
from meetsync.settings import Settings
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.store.apply import CREDENTIAL_GRACE
from meetsync.worker.reconciler import drift, snapshot_of
from tests.helpers.savvycal import flat

NATIVE_SECRET = "faults-native-secret-0123456789abcdef"
STANDARD_SECRET = "whsec_ZmF1bHRzLXN0YW5kYXJkLXNlY3JldC0wMTIzNDU2Nzg5"
API_TOKEN = "faults-api-token-c0ffee-5ecret"
READ_TOKEN = "faults-read-token-d00d-5ecret"


def restart(server: RedisServer) -> None:
    """Stop ``server`` and start it again on the same port (with or without its data)."""
    server.stop()
    server.start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, with AOF persistence: safe to stop and start."""
    server = RedisServer(data_dir=tmp_path / "redis", persistent=True).start()
    yield server
    server.stop()


@pytest.fixture
def amnesiac_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence: a restart empties it."""
    server = RedisServer(data_dir=tmp_path / "redis-volatile", persistent=False).start()
    yield server
    server.stop()


def recent_sim(seed: int, *, hours_ago: float = 3) -> SavvyCalSim:
    """A simulated provider whose clock starts in the past, so its timestamps stay behind the
    real clock (a refetch stamps events with the real time)."""
    start = (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(microsecond=0)
    return SavvyCalSim(seed, start=start, token=API_TOKEN)


def events_of(deliveries: list[Delivery]) -> list[Event]:
    events = [parse_envelope(d.body) for d in deliveries]
    return [e for e in events if isinstance(e, Event)]


async def publish_all(redis: aioredis.Redis, events: list[Event], partitions: int = 1) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            await publish(pipe, event, partitions)  # type: ignore[arg-type]
        await pipe.execute()


async def queue_settled(redis: aioredis.Redis, partitions: int = 1) -> bool:
    """Nothing queued and nothing pending (every entry applied and acknowledged), on every
    partition."""
    waiting = await backlog(redis, partitions)
    return waiting.queued == waiting.pending == 0


async def eventually(
    check: Callable[[], Awaitable[bool]], patience: float = 20, step: float = 0.05
) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"not reached within {patience} s")


def mismatches(sim: SavvyCalSim, db_path: Path) -> Counter[str]:
    """Fields where the mirror differs from the provider's truth (appointments in the window,
    as ``meetsync demo`` compares them); credentials the worker purged on schedule (the
    appointment ended over 24 h before the real now) are not drift."""
    now = datetime.now(UTC)
    window = iso_utc(sim.now - CREDENTIAL_GRACE)
    purged = iso_utc(now - CREDENTIAL_GRACE)
    truth = {
        appointment_id: snapshot_of(appointment_event(
            obj, event_id="truth", type="truth", occurred_at=to_micros(sim.now)))
        for appointment_id, obj in sim.appointments.items()
    }
    in_window = {k: v for k, v in truth.items() if v["end_at"] is None or v["end_at"] > window}
    store = open_store(db_path, readonly=True)
    try:
        mirror = store.snapshots(list(in_window))
    finally:
        store.close()
    fields: Counter[str] = Counter()
    for appointment_id, expected in in_window.items():
        expired = expected["end_at"] is not None and expected["end_at"] <= purged
        fields.update(drift(expected, mirror.get(appointment_id), expired=expired))
    return fields


def applied_ids(db_path: Path) -> set[str]:
    store = open_store(db_path, readonly=True)
    try:
        return {row[0] for row in store.conn.execute("SELECT id FROM events")}
    finally:
        store.close()


@pytest.fixture
async def client_of() -> AsyncIterator[Callable[[RedisServer], aioredis.Redis]]:
    """Redis clients on a given server, closed after the test."""
    made: list[aioredis.Redis] = []

    def make(server: RedisServer) -> aioredis.Redis:
        # Retrying like a sender would: the first command after a restart meets a dead socket.
        client = aioredis.Redis.from_url(
            server.url, socket_connect_timeout=1, retry_on_error=[ConnectionError],
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 8),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def stack_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a ``meetsync`` process reads its settings from."""
    env = {
        **os.environ,
        "MEETSYNC_DB": settings.db_path,
        "REDIS_URL": settings.redis_url or "",
        "SAVVYCAL_WEBHOOK_SECRET": ",".join(flat(settings).savvycal_webhook_secrets),
        "STANDARD_WEBHOOK_SECRET": ",".join(flat(settings).standard_webhook_secrets),
        "SAVVYCAL_API_URL": flat(settings).savvycal_api_url,
        "SAVVYCAL_API_TOKEN": flat(settings).savvycal_api_token or "",
        "MEETSYNC_READ_TOKEN": settings.read_token or "",
        "RECONCILE_INTERVAL_SECONDS": "86400",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


class Processes:
    """``meetsync`` subprocesses, each logging to its own file; all stopped after the test."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(self, command: str, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "meetsync.cli", command], env=env, stdout=out, stderr=out
        )
        out.close()
        self.running.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    found = Processes(tmp_path)
    yield found
    found.stop_all()


@pytest.fixture
def sim_api() -> Iterator[Callable[[SavvyCalSim], str]]:
    """Serve a simulator's API in the background; returns its base URL (``.../v1``)."""
    with contextlib.ExitStack() as stack:

        def serve(sim: SavvyCalSim) -> str:
            app = sim.asgi_app(rate_limit_per_minute=10_000)
            return stack.enter_context(serve_in_background(app)) + "/v1"

        yield serve
