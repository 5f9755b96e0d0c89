"""Secrets: planted credentials never reach a log line, a stored error or a dead letter; the
mirror is owner-only and forgets credentials 24 h after the end; rotation takes two secrets."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from meetsync.demo.stack import wait_ready
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.events import Event, Meeting, iso_utc
from meetsync.log import redact_credentials
from meetsync.providers.savvycal.simulator import SavvyCalSim, signer
from meetsync.providers.savvycal.simulator.signing import native_headers, standard_headers
from meetsync.queue import EVENT_STREAM, FIELD
from meetsync.settings import Settings
from meetsync.simulator import Chaos, Faults, deliver
from meetsync.store import open_store
from meetsync.webhooks import create_app
from tests.faults.conftest import (
    API_TOKEN,
    NATIVE_SECRET,
    READ_TOKEN,
    STANDARD_SECRET,
    Processes,
    events_of,
    eventually,
    queue_settled,
    recent_sim,
    stack_env,
)
from tests.faults.test_dead_letters import poisoned
from tests.helpers.savvycal import savvycal_settings
from tests.sql import query

OLD_NATIVE = "faults-native-secret-RETIRED-4242"
OLD_STANDARD = "whsec_b2xkLXN0YW5kYXJkLXNlY3JldC1yZXRpcmVkLTQyNDI="


def planted(sim: SavvyCalSim) -> set[str]:
    """Every credential value the workload carries: secrets, tokens, host URL tokens, passwords."""
    found = {NATIVE_SECRET, OLD_NATIVE, STANDARD_SECRET, OLD_STANDARD, API_TOKEN, READ_TOKEN,
             STANDARD_SECRET.removeprefix("whsec_"), OLD_STANDARD.removeprefix("whsec_")}
    for event in events_of(sim.history):
        if event.meeting and event.meeting.host_url:
            found.add(event.meeting.host_url.partition("token=")[2])
        if event.meeting and event.meeting.password:
            found.add(event.meeting.password)
    return found


def leaks(text: str, secrets: set[str]) -> set[str]:
    """Planted values in ``text``: long ones anywhere, short ones (passwords) as whole words."""
    words = set(re.findall(r"[A-Za-z0-9]+", text))
    return {s for s in secrets if (s in text if len(s) > 12 else s in words)}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meetsync.cli", *args], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


async def test_no_planted_credential_reaches_logs_stored_errors_or_dead_letters(
    own_redis: RedisServer,
    db_path: Path,
    processes: Processes,
    client_of: Callable[[RedisServer], aioredis.Redis],
    sim_api: Callable[[SavvyCalSim], str],
) -> None:
    sim = recent_sim(81)
    deliveries = sim.play(40)
    api = sim_api(sim)
    port = free_port()
    settings = savvycal_settings(
        db_path=str(db_path), redis_url=own_redis.url,
        savvycal_webhook_secrets=(OLD_NATIVE, NATIVE_SECRET),
        standard_webhook_secrets=(STANDARD_SECRET,),
        savvycal_api_url=api, savvycal_api_token=API_TOKEN, read_token=READ_TOKEN,
    )
    env = stack_env(settings, LOG_LEVEL="DEBUG", MEETSYNC_CLAIM_IDLE_MS="100", PORT=str(port))
    web = processes.spawn("serve", env, "web")
    processes.spawn("worker", env, "worker")
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, web)
    redis = client_of(own_redis)
    outputs: list[str] = []

    # Webhooks: both schemes, duplicates, and refusals of every kind.
    half = len(deliveries) // 2
    chaos = Chaos(drop=0, duplicate=0.2)
    native = await deliver(deliveries[:half], f"{url}/webhooks/savvycal",
                           signer=signer("native", NATIVE_SECRET), chaos=chaos, seed=1)
    standard = await deliver(deliveries[half:], f"{url}/webhooks/savvycal",
                             signer=signer("standard", STANDARD_SECRET), chaos=chaos, seed=2)
    assert native.accepted == native.sent and standard.accepted == standard.sent
    body = deliveries[0].body
    async with httpx.AsyncClient(base_url=url) as http:
        forged = native_headers(body, "not-the-secret", "wh_x")
        assert (await http.post("/webhooks/savvycal", content=body,
                                headers=forged)).status_code == 401
        relayed = standard_headers(body, OLD_STANDARD, "msg_x")
        assert (await http.post("/webhooks/savvycal", content=body,
                                headers=relayed)).status_code == 401
        junk = b'{"id": "evt_junk", "password": "' + READ_TOKEN.encode() + b'"}'
        assert (await http.post("/webhooks/savvycal", content=junk,
                                headers=native_headers(junk, NATIVE_SECRET, "wh_x"))
                ).status_code == 400
        for token in ("wrong", READ_TOKEN):
            await http.get(f"/v1/appointments/{deliveries[0].appointment_id}/meeting",
                           headers={"authorization": f"Bearer {token}"})

    # Poison: a credential-carrying event the mirror refuses every time, and garbage.
    poison = replace(next(e for e in reversed(events_of(sim.history)) if e.meeting
                          and e.meeting.host_url and e.meeting.password), id="evt_poisonpoison")
    await redis.xadd(EVENT_STREAM, {FIELD: poisoned(poison)})
    await redis.xadd(EVENT_STREAM, {FIELD: b"garbage " + API_TOKEN.encode()})

    async def settled() -> bool:
        return await queue_settled(redis)

    await eventually(settled, patience=30)

    # The provider refuses everything: a reconcile and a replay fail, and say so.
    sim.faults = Faults(rate_limit_rate=1.0, retry_after=0)
    failing = cli(env, "reconcile")
    assert failing.returncode == 1
    refused = cli(env, "dead-letters", "replay", "--all")
    assert refused.returncode == 1 and '"failed"' in refused.stdout
    sim.faults = Faults()
    replayed = cli(env, "dead-letters", "replay", "--all")
    assert '"replayed"' in replayed.stdout
    outputs += [p.stdout + p.stderr for p in (failing, refused, replayed)]
    processes.stop_all()

    logs = processes.log("web") + processes.log("worker")
    for expected in ("webhook_queued", "webhook_rejected", "event_dead_lettered",
                     "event_failed"):
        assert expected in logs, f"the workload logged no {expected}"
    assert "reconcile_interrupted" in outputs[0]
    stored = query(db_path, "SELECT reason, payload FROM dead_letters")
    stored += query(db_path, "SELECT errors, drift FROM reconcile_runs")
    assert len(stored) >= 3
    secrets = planted(sim)
    assert poison.meeting is not None and poison.meeting.password in secrets
    assert leaks(logs, secrets) == set()
    assert leaks("\n".join(outputs), secrets) == set()
    assert leaks(str(stored), secrets) == set()


def test_the_log_processor_scrubs_credentials_from_free_text_and_tracebacks() -> None:
    host_url = "https://book.example.com/p/appointments/appt_x/host?token=HOSTTOKEN0123456789"
    try:
        raise RuntimeError(f"could not fetch {host_url} with Bearer {API_TOKEN}")
    except RuntimeError as exc:
        record = {
            "event": f"GET redis://:{API_TOKEN}@cache:6379 failed; secret {STANDARD_SECRET}",
            "error": str(exc),
            "exception": repr(exc),
            "headers": {"Authorization": f"Bearer {READ_TOKEN}",
                        "x-savvycal-signature": "sha256=ABCDEF0123456789ABCDEF0123456789"},
            "meeting": {"host_url": host_url, "password": "pw1234"},
        }
    text = orjson.dumps(redact_credentials(None, "error", record)).decode()
    for secret in ("HOSTTOKEN0123456789", API_TOKEN, READ_TOKEN, STANDARD_SECRET, "pw1234",
                   "ABCDEF0123456789ABCDEF0123456789"):
        assert secret not in text


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.sqlite_only
def test_the_mirror_and_its_wal_files_are_owner_only(db_path: Path, open_umask: None) -> None:
    store = open_store(db_path)
    store.apply(events_of(recent_sim(82).play(3)))
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    store.close()


def ended(appointment_id: str, end: datetime) -> Event:
    """SavvyCal's credentials die 24 h after the appointment ends (its package says so)."""
    dies = iso_utc(end + timedelta(hours=24))
    return Event(
        id=f"evt_{appointment_id}", provider="savvycal", type="appointment.meeting.updated",
        occurred_at=1, appointment_id=appointment_id, appointment_status="scheduled",
        start_at=iso_utc(end - timedelta(hours=1)), end_at=iso_utc(end),
        meeting=Meeting(id=f"amtg_{appointment_id}", status="created",
                        host_url=f"https://h/{appointment_id}?token=T", password="pw",
                        host_url_expires_at=dies, password_expires_at=dies),
    )


def test_credentials_are_purged_once_the_appointment_ended_over_24_hours_ago(
    db_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Written an hour ago, while every credential was still alive; purged now.
    store = open_store(db_path, clock=lambda: now - timedelta(hours=1))
    store.apply([ended("appt_old", now - timedelta(hours=24, seconds=1)),
                 ended("appt_recent", now - timedelta(hours=23, minutes=59)),
                 ended("appt_upcoming", now + timedelta(hours=2))])
    assert store.purge_expired_credentials(now) == 1
    rows = dict(((a, (h, p)) for a, h, p in store.conn.execute(
        "SELECT appointment_id, host_url, password FROM meetings")))
    store.close()
    assert rows["appt_old"] == (None, None)
    assert rows["appt_recent"] == ("https://h/appt_recent?token=T", "pw")
    assert rows["appt_upcoming"] == ("https://h/appt_upcoming?token=T", "pw")


async def test_rotation_accepts_two_secrets_and_removing_the_old_one_rejects_it(
    redis: aioredis.Redis, db_path: Path
) -> None:
    body = recent_sim(83).play(1)[0].body

    async def status(settings: Settings, headers: dict[str, str]) -> int:
        app = create_app(settings, redis=redis)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://receiver") as http:
            response = await http.post("/webhooks/savvycal", content=body, headers=headers)
            return response.status_code

    old_signed = [native_headers(body, OLD_NATIVE, "wh_r"),
                  standard_headers(body, OLD_STANDARD, "msg_r")]
    new_signed = [native_headers(body, NATIVE_SECRET, "wh_r"),
                  standard_headers(body, STANDARD_SECRET, "msg_r")]
    rotating = savvycal_settings(db_path=str(db_path), read_token=READ_TOKEN,
                        savvycal_webhook_secrets=(OLD_NATIVE, NATIVE_SECRET),
                        standard_webhook_secrets=(OLD_STANDARD, STANDARD_SECRET))
    rotated = savvycal_settings(db_path=str(db_path), read_token=READ_TOKEN,
                       savvycal_webhook_secrets=(NATIVE_SECRET,),
                       standard_webhook_secrets=(STANDARD_SECRET,))
    for headers in old_signed + new_signed:
        assert await status(rotating, headers) == 202
    for headers in old_signed:
        assert await status(rotated, headers) == 401
    for headers in new_signed:
        assert await status(rotated, headers) == 202
