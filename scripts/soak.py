"""Soak: a long workload through the real stack, under chaos and faults; nothing lost or leaked.

    python scripts/soak.py                    # 100,000 events (about 5-10 minutes)
    python scripts/soak.py --ci               # 3,000 events, for the test suite
    python scripts/soak.py --events 20000 --keep /tmp/soak

Starts its own Redis (AOF on), the provider simulator's API, ``meetsync serve`` and
``meetsync worker`` as subprocesses (as the Procfile would), and plays the simulator's workload
as webhooks that are dropped, duplicated and reordered, signed by either scheme. Mid-run it
SIGKILLs the worker once (another takes over its pending entries) and restarts Redis once
(deliveries meanwhile get 503 and are retried, as a sender would). Then it waits for the queue
to drain, runs the reconciler once against the simulator's API, and reports: events
acknowledged, applied, duplicates and stale ignored, dead letters, acknowledged events missing
from the mirror, mismatches after reconcile, and planted credentials found in the logs. Exit
status 0 only when nothing was lost, the mirror matches the provider and no credential leaked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from meetsync.demo import compare, spawn, wait_ready, wait_until_applied
from meetsync.events import Event
from meetsync.log import configure
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.redis_server import RedisServer, free_port
from meetsync.simulator import (
    Chaos,
    Delivery,
    ProviderSim,
    Scheme,
    deliver,
    played_until,
    serve_in_background,
)
from meetsync.store import open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.queue import EVENT_STREAM, FIELD, STATS
from meetsync.worker.reconciler import Reconciler

CI_EVENTS = 3000
CHUNKS = 10
KILL_WORKER_AT = 3  # chunk index: about 30 % in
RESTART_REDIS_AT = 6  # about 60 % in
POISON_AT = 5
FAULT_AFTER = 0.3  # seconds into the chunk, while its deliveries are in flight


@dataclass(frozen=True)
class SoakOptions:
    events: int = 100_000
    seed: int = 1
    drop: float = 0.05
    duplicate: float = 0.10
    timeout: float = 900.0
    log_level: str = "DEBUG"  # every line the stack can write is scanned for credentials
    poison: int = 5


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def workload(sim: ProviderSim, events: int) -> list[Delivery]:
    """At least ``events`` deliveries, whole appointment lifecycles only."""
    played: list[Delivery] = []
    while len(played) < events:
        played += sim.play(max(1, min(2000, (events - len(played)) // 4)))
    return played


def planted_credentials(deliveries: list[Delivery]) -> set[str]:
    """Every host-URL token and meeting password the workload carries."""
    found: set[str] = set()
    for delivery in deliveries:
        event = parse_envelope(delivery.body)
        meeting = event.meeting if isinstance(event, Event) else None
        if meeting and meeting.host_url:
            found.add(meeting.host_url.partition("token=")[2])
        if meeting and meeting.password:
            found.add(meeting.password)
    found.discard("")
    return found


def credential_leaks(text: str, credentials: set[str], secret_values: list[str]) -> list[str]:
    """Planted values in ``text``: secrets anywhere, tokens and passwords as whole words."""
    words = set(re.findall(r"[A-Za-z0-9]+", text))
    leaked = sorted(credentials & words)
    leaked += [value for value in secret_values if value in text]
    return leaked


class Stack:
    """The receiver and worker processes, restartable."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.web = spawn("serve", env, log)
        self.worker = spawn("worker", env, log)
        self.worker_crashes = 0

    def kill_worker(self) -> None:
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(timeout=10)
        self.worker = spawn("worker", self.env, self.log)

    def check_alive(self) -> None:
        """Restart a worker that exited on its own, as a process supervisor would (and count
        it); a receiver that exited ends the soak."""
        if self.web.poll() is not None:
            raise RuntimeError(f"the receiver exited ({self.web.returncode}); see {self.log}")
        if self.worker.poll() is not None:
            self.worker_crashes += 1
            say(f"  the worker exited ({self.worker.returncode}); restarting it")
            self.worker = spawn("worker", self.env, self.log)

    async def supervise(self) -> None:
        while True:
            self.check_alive()
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        for proc in (self.web, self.worker):
            proc.terminate()
        for proc in (self.web, self.worker):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def run_soak(options: SoakOptions, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    sim, deliveries = played_until(
        datetime.now(UTC), options.seed, lambda sim: workload(sim, options.events),
        token="sim-" + secrets.token_urlsafe(24),
    )
    say(f"workload: {len(deliveries)} webhooks over {len(sim.appointments)} appointments")
    native = secrets.token_hex(20)
    standard = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    read_token = secrets.token_urlsafe(24)
    secret_values = [native, standard, standard.removeprefix("whsec_"), sim.token, read_token]
    redis_server = RedisServer(data_dir=workdir / "redis", persistent=True)
    with ExitStack() as stack:
        stack.enter_context(redis_server)
        sim_root = stack.enter_context(serve_in_background(sim.asgi_app()))
        port = free_port()
        env = {
            **os.environ, "PORT": str(port), "MEETSYNC_DB": str(workdir / "mirror.db"),
            "REDIS_URL": redis_server.url, "SAVVYCAL_WEBHOOK_SECRET": native,
            "STANDARD_WEBHOOK_SECRET": standard, "MEETSYNC_READ_TOKEN": read_token,
            "SAVVYCAL_API_URL": f"{sim_root}/v1", "SAVVYCAL_API_TOKEN": sim.token,
            "RECONCILE_INTERVAL_SECONDS": "86400", "LOG_LEVEL": options.log_level,
            "MEETSYNC_CLAIM_IDLE_MS": "1000",
        }
        log = workdir / "stack.log"
        procs = Stack(env, log)
        stack.callback(procs.stop)
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, procs.web)
        say(f"stack up: receiver {url}, redis {redis_server.url}, API {sim_root}/v1, logs {log}")
        supervisor = asyncio.create_task(procs.supervise())
        try:
            delivered, faults = await _deliver(deliveries, url, options, native, standard,
                                               procs, redis_server)
            redis = aioredis.Redis.from_url(redis_server.url)
            try:
                await wait_until_applied(redis, options.timeout)
                stats = {k.decode(): int(v) for k, v in (await redis.hgetall(STATS)).items()}
            finally:
                await redis.aclose()
            procs.check_alive()
        finally:
            supervisor.cancel()
        faults["worker_exits_restarted_by_supervisor"] = procs.worker_crashes
        procs.stop()
        acknowledged = {d.event_id for d in deliveries} - set(delivered.pop("dropped_ids"))
        store = open_store(workdir / "mirror.db", readonly=True)
        inbox = {row[0] for row in store.conn.execute("SELECT id FROM events")}
        outcomes = dict(store.conn.execute("SELECT outcome, count(*) FROM events GROUP BY 1"))
        dead_letters = len(store.dead_letters(include_replayed=True))
        store.close()
        report = await _reconcile(sim, workdir / "mirror.db", sim_root)
        store = open_store(workdir / "mirror.db", readonly=True)
        stored_errors = str(store.conn.execute("SELECT reason, payload FROM dead_letters")
                            .fetchall() + store.conn.execute("SELECT errors FROM reconcile_runs")
                            .fetchall())
        store.close()
    text = log.read_text(errors="replace")
    planted = planted_credentials(deliveries)
    leaks = credential_leaks(text, planted, secret_values)
    stored_leaks = credential_leaks(stored_errors, planted, secret_values)
    lost = acknowledged - inbox if not (delivered["failed"] or delivered["rejected"]) else None
    return {
        "events_played": len(deliveries),
        "appointments": len(sim.appointments),
        "webhooks": delivered,
        "faults": faults,
        "events_acknowledged": len(acknowledged),
        # From the mirror's inbox (the truth); the worker's counters can miss a batch
        # committed just before a SIGKILL.
        "events_applied": len(inbox),
        "events_applied_newest_wins": outcomes.get("applied", 0),
        "stale_ignored": outcomes.get("stale", 0),
        "duplicates_ignored": stats.get("duplicates", 0),
        "worker_counters": stats,
        "dead_letters": dead_letters,
        "acknowledged_missing_from_mirror": None if lost is None else len(lost),
        **report,
        "credential_leaks_in_logs": len(leaks),
        "credential_leaks_in_stored_errors": len(stored_leaks),
        "credentials_planted": len(planted) + len(secret_values),
        "log_lines_scanned": text.count("\n"),
        "seconds": round(time.monotonic() - started, 1),
    }


async def _deliver(
    deliveries: list[Delivery], url: str, options: SoakOptions, native: str, standard: str,
    procs: Stack, redis_server: RedisServer,
) -> tuple[dict[str, Any], dict[str, Any]]:
    chaos = Chaos(drop=options.drop, duplicate=options.duplicate, reorder=True)
    totals: Counter[str] = Counter()
    dropped: list[str] = []
    faults: dict[str, Any] = {}
    size = -(-len(deliveries) // CHUNKS)
    t0 = time.monotonic()
    for n in range(CHUNKS):
        part = deliveries[n * size : (n + 1) * size]
        if not part:
            break
        scheme: Scheme = "native" if n % 2 == 0 else "standard"
        # A sender retries a refused delivery for a while (here up to ~25 s of backoff).
        sending = asyncio.create_task(deliver(
            part, f"{url}/webhooks/savvycal", scheme=scheme,
            secret=native if scheme == "native" else standard,
            chaos=chaos, seed=options.seed * 1000 + n, max_attempts=10, backoff=0.05,
        ))
        if n == KILL_WORKER_AT:
            await asyncio.sleep(FAULT_AFTER)
            procs.kill_worker()
            faults["worker_killed_at_chunk"] = n
            say(f"  chunk {n}: worker SIGKILLed mid-drain, another started")
        if n == POISON_AT and options.poison:
            await _inject_poison(redis_server.url, deliveries, options.poison)
            faults["poison_events_injected"] = options.poison
        if n == RESTART_REDIS_AT:
            await asyncio.sleep(FAULT_AFTER)
            began = time.monotonic()
            await asyncio.to_thread(redis_server.stop)
            await asyncio.sleep(1.0)  # down long enough for the receiver to answer 503
            await asyncio.to_thread(redis_server.start)
            faults["redis_restarted_at_chunk"] = n
            faults["redis_down_seconds"] = round(time.monotonic() - began, 2)
            say(f"  chunk {n}: Redis restarted ({faults['redis_down_seconds']} s down)")
        report = await sending
        totals.update(sent=report.sent, dropped=report.dropped, duplicated=report.duplicated,
                      accepted=report.accepted, failed=report.failed,
                      rejected=sum(report.rejected.values()),
                      retried=report.attempts - report.sent)
        dropped += report.dropped_event_ids
        done = min((n + 1) * size, len(deliveries))
        rate = totals["sent"] / max(time.monotonic() - t0, 1e-9)
        say(f"  delivered {done}/{len(deliveries)} webhooks ({rate:,.0f} POST/s)")
    return {**totals, "dropped_ids": dropped}, faults


async def _inject_poison(url: str, deliveries: list[Delivery], count: int) -> None:
    """Events the mirror refuses on every try (``provider`` null, as a buggy producer might
    queue them), each carrying credentials: they must end as redacted dead letters."""
    carrying = [e for e in map(parse_envelope, (d.body for d in deliveries))
                if isinstance(e, Event) and e.meeting and e.meeting.host_url]
    redis = aioredis.Redis.from_url(url)
    try:
        for n, event in enumerate(carrying[:count]):
            raw = orjson.loads(event.to_json())
            raw.update(id=f"evt_poison{n:07d}", provider=None)
            await redis.xadd(EVENT_STREAM, {FIELD: orjson.dumps(raw)})
    finally:
        await redis.aclose()


async def _reconcile(sim: ProviderSim, db_path: Path, sim_root: str) -> dict[str, Any]:
    # Time passed at the provider too: the comparison, the reconciler and the mirror's writes
    # share this one "now" (what has expired is decided once).
    sim.now = max(sim.now, datetime.now(UTC))
    store = open_store(db_path, readonly=True)
    _, before, compared = compare(sim, store)
    store.close()
    thread = StoreThread(lambda: open_store(db_path, clock=lambda: sim.now))
    try:
        async with SavvyCalClient(f"{sim_root}/v1", sim.token,
                                  budget=RequestBudget(300)) as client:
            run = await Reconciler(client, thread, clock=lambda: sim.now).run()
    finally:
        thread.close()
    store = open_store(db_path, readonly=True)
    matching, after, compared = compare(sim, store)
    store.close()
    return {
        "appointments_compared": compared,
        "mismatches_before_reconcile": sum(before.values()),
        "reconcile": {k: run.summary()[k] for k in
                      ("outcome", "api_calls", "pages", "drifted", "repaired", "errors")},
        "mismatches_after_reconcile": sum(after.values()),
        "mismatched_fields_after_reconcile": dict(after),
        "appointments_matching": matching,
    }


def passed(report: dict[str, Any]) -> bool:
    return bool(
        report["mismatches_after_reconcile"] == 0
        and report["credential_leaks_in_logs"] == 0
        and report["credential_leaks_in_stored_errors"] == 0
        and report["acknowledged_missing_from_mirror"] == 0
        and report["events_acknowledged"] > 0
        and report["dead_letters"] == report["faults"].get("poison_events_injected", 0)
    )


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="soak.py", description=description)
    parser.add_argument("--events", type=int, default=SoakOptions.events)
    parser.add_argument("--ci", action="store_true", help=f"a short run ({CI_EVENTS} events)")
    parser.add_argument("--seed", type=int, default=SoakOptions.seed)
    parser.add_argument("--drop", type=float, default=SoakOptions.drop)
    parser.add_argument("--duplicate", type=float, default=SoakOptions.duplicate)
    parser.add_argument("--keep", metavar="DIR", help="keep the mirror, Redis data and logs")
    parser.add_argument("--log-level", default=SoakOptions.log_level)
    parser.add_argument("--poison", type=int, default=SoakOptions.poison,
                        help="poison events queued mid-run (they must be dead-lettered)")
    args = parser.parse_args(argv)
    configure("WARNING")  # our own logs to stderr: stdout carries the JSON report only
    options = SoakOptions(events=CI_EVENTS if args.ci else args.events, seed=args.seed,
                          drop=args.drop, duplicate=args.duplicate, log_level=args.log_level,
                          poison=args.poison)
    with ExitStack() as stack:
        if args.keep:
            workdir = Path(args.keep)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        report = asyncio.run(run_soak(options, workdir))
    report["passed"] = passed(report)
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
