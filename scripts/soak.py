"""Soak: a long workload through the real stack, under chaos and faults; nothing lost or leaked.

    python scripts/soak.py                    # 100,000 events (about 5-10 minutes)
    python scripts/soak.py --ci               # 3,000 events, for the test suite
    python scripts/soak.py --events 20000 --keep /tmp/soak
    python scripts/soak.py --postgres --receivers 2 --workers 4   # many hosts, one PostgreSQL

Starts its own Redis (AOF on), the provider simulator's API, ``--receivers`` ``meetsync serve``
and ``--workers`` ``meetsync worker`` processes (as a Procfile scaled out would), the mirror a
SQLite file or, with ``--postgres``, a private PostgreSQL (``meetsync.dev.pg_server``). It plays the
simulator's workload as webhooks that are dropped, duplicated and reordered, signed by either
scheme, spread round-robin over the receivers as a load balancer would (a delivery whose
receiver is down is retried on the next one, as a sender retries: a failover).

Faults, each once, at its own point of the run: a receiver SIGKILLed (started again later), a
worker SIGKILLed (another started in its place; the others claim its pending entries),
PostgreSQL stopped and started on its port (workers back off and reconnect), Redis restarted
(deliveries meanwhile get 503 and are retried), poison events queued.

Once the queue is drained it checks, before any reconcile:

- nothing acknowledged is lost: every event a receiver answered 2xx for is in the mirror's
  inbox (a duplicate delivery shares its id);
- the mirror equals in-order application: a second mirror (a fresh SQLite file) gets the
  same events one at a time in ``(occurred_at, id)`` order, parsed as the receiver parses
  them, and every row of appointments, meetings, participants and occurrences must match
  (``updated_at`` aside, credentials compared as alive or dead at one instant). The inbox
  records how each event was ordered (``occurred_at``, and ``claimed_at`` for one the receiver
  re-dated to its receipt): the second mirror orders them so, and each must agree with its
  delivery's body.

Through the delivery phase the soak holds the reconcile cron's claim (as an operator pausing
sweeps would): the provider's truth must not reach the mirror before that comparison. Then it
lets go and waits for the workers' own reconcile cron (``--reconcile-interval``) to run a few
times: the runs must be once per interval across all workers, not once per worker (so must
the purge and refresh crons' claims, watched all along), and the mirror must then match the
provider. Last, every log line and stored error is scanned for the credentials it planted.

The JSON report lists each figure and ``checks``: exit status 0 only when every check passed.
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
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from soak_checks import (  # beside this file
    CRONS,
    HOLDER,
    RECONCILE_KEY,
    CronWatch,
    in_order_check,
    read_mirror,
    warnings_by_event,
)

from meetsync.demo.savvycal import compare
from meetsync.demo.stack import spawn, wait_ready, wait_until_applied
from meetsync.dev.pg_server import PostgresServer
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.events import Event
from meetsync.log import configure
from meetsync.providers.savvycal.envelope import parse_envelope
from meetsync.providers.savvycal.simulator import (
    Delivery,
    SavvyCalSim,
    Scheme,
    played_until,
    signer,
)
from meetsync.queue import EVENT_STREAM, FIELD, STATS
from meetsync.simulator import Chaos, deliver, serve_in_background
from meetsync.store import open_store

CI_EVENTS = 3000
CHUNKS = 10
KILL_RECEIVER_AT = 1  # chunk index: about 10 % in; started again one chunk later
KILL_WORKER_AT = 3  # about 30 % in
RESTART_POSTGRES_AT = 4  # with --postgres
POISON_AT = 5
RESTART_REDIS_AT = 6  # about 60 % in
FAULT_AFTER = 0.3  # seconds into the chunk, while its deliveries are in flight
DOWN_SECONDS = 1.0  # how long Redis, PostgreSQL (and a lone receiver) stay down
CRON_RUNS = 3  # reconcile runs to wait for once the soak lets go of the claim
CRON_CLAIM_SECONDS = {"purge_credentials": 50, "refresh_credentials": 50}  # worker/main.py


@dataclass(frozen=True)
class SoakOptions:
    events: int = 100_000
    seed: int = 1
    drop: float = 0.05
    duplicate: float = 0.10
    timeout: float = 900.0
    log_level: str = "DEBUG"  # every line the stack can write is scanned for credentials
    poison: int = 5
    postgres: bool = False
    receivers: int = 1
    workers: int = 1
    reconcile_interval: int = 60  # seconds; a divisor of 60 or a multiple of 60 (arq's cron)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def workload(sim: SavvyCalSim, events: int) -> list[Delivery]:
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
    """The receivers and workers, kept running as a process supervisor would."""

    def __init__(self, env: dict[str, str], log: Path, receivers: int, workers: int) -> None:
        self.env = env
        self.log = log
        self.ports = [free_port() for _ in range(receivers)]
        self.receivers: list[subprocess.Popen[bytes] | None] = [
            self._serve(port) for port in self.ports]
        self.workers = [spawn("worker", env, log) for _ in range(workers)]
        self.worker_exits = 0  # on their own, not killed by the soak

    def _serve(self, port: int) -> subprocess.Popen[bytes]:
        return spawn("serve", {**self.env, "PORT": str(port)}, self.log)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    async def ready(self) -> None:
        for url, proc in zip(self.urls, self.receivers, strict=True):
            if proc is not None:
                await wait_ready(url, proc)

    def kill_receiver(self, n: int) -> None:
        proc = self.receivers[n]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.receivers[n] = None  # down: its load balancer keeps sending to it

    async def restart_receiver(self, n: int) -> None:
        proc = self.receivers[n] = self._serve(self.ports[n])
        await wait_ready(self.urls[n], proc)

    def kill_worker(self) -> None:
        self.workers[0].send_signal(signal.SIGKILL)
        self.workers[0].wait(timeout=10)
        self.workers[0] = spawn("worker", self.env, self.log)

    def check_alive(self) -> None:
        """Restart a worker that exited on its own (and count it); a receiver that exited on
        its own ends the soak."""
        for n, proc in enumerate(self.receivers):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"receiver {n} exited ({proc.returncode}); see {self.log}")
        for n, proc in enumerate(self.workers):
            if proc.poll() is not None:
                self.worker_exits += 1
                say(f"  worker {n} exited ({proc.returncode}); restarting it")
                self.workers[n] = spawn("worker", self.env, self.log)

    async def supervise(self) -> None:
        while True:
            self.check_alive()
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        running = [proc for proc in (*self.receivers, *self.workers) if proc is not None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def run_soak(options: SoakOptions, workdir: Path, *, keep: bool = False) -> dict[str, Any]:
    """The whole soak in ``workdir``; ``keep``: leave PostgreSQL's data behind, stopped."""
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
    postgres: PostgresServer | None = None
    with ExitStack() as stack:
        stack.enter_context(redis_server)
        sim_root = stack.enter_context(serve_in_background(sim.asgi_app()))
        db = str(workdir / "mirror.db")
        if options.postgres:
            (workdir / "postgres").mkdir(parents=True, exist_ok=True)
            postgres = PostgresServer(workdir / "postgres")
            stack.callback(postgres.stop if keep else postgres.remove)
            db = postgres.start().create_database("meetsync")
            say(f"PostgreSQL up: {db} (data in {postgres.data_dir})")
        env = {
            **os.environ, "MEETSYNC_DB": db,
            "REDIS_URL": redis_server.url, "SAVVYCAL_WEBHOOK_SECRET": native,
            "STANDARD_WEBHOOK_SECRET": standard, "MEETSYNC_READ_TOKEN": read_token,
            "SAVVYCAL_API_URL": f"{sim_root}/v1", "SAVVYCAL_API_TOKEN": sim.token,
            "RECONCILE_INTERVAL_SECONDS": str(options.reconcile_interval),
            "LOG_LEVEL": options.log_level, "MEETSYNC_CLAIM_IDLE_MS": "1000",
        }
        redis = aioredis.Redis.from_url(redis_server.url)
        # Held before any worker starts: no sweep until the comparison is done.
        await redis.set(RECONCILE_KEY, HOLDER)
        log = workdir / "stack.log"
        procs = Stack(env, log, options.receivers, options.workers)
        stack.callback(procs.stop)
        # worker/main.py: what each periodic task's claim lasts
        watch = CronWatch(redis_server.url, {**CRON_CLAIM_SECONDS,
                                             "reconcile": 0.9 * options.reconcile_interval})
        watching = asyncio.create_task(watch.run())
        supervisor = asyncio.create_task(procs.supervise())
        try:
            await procs.ready()
            say(f"stack up: receivers {', '.join(procs.urls)}, {options.workers} workers, "
                f"redis {redis_server.url}, API {sim_root}/v1, logs {log}")
            delivered, faults = await _deliver(deliveries, options, native, standard, procs,
                                               redis_server, postgres)
            drain_began = time.monotonic()
            await wait_until_applied(redis, options.timeout)
            faults["drain_seconds"] = round(time.monotonic() - drain_began, 1)
            stats = {k.decode(): int(v) for k, v in (await redis.hgetall(STATS)).items()}
            procs.check_alive()
            say(f"queue drained in {faults['drain_seconds']} s; checking the mirror")

            acknowledged: set[str] = delivered.pop("accepted_ids")
            mirror = read_mirror(db)
            checked_at = datetime.now(UTC)
            ordered = await asyncio.to_thread(
                in_order_check, deliveries, mirror, env, workdir / "in_order.db", checked_at)
            before = _compare(sim, db)

            cron = await _cron_phase(redis, db, options, watch)
            after = _compare(sim, db)
            procs.check_alive()
        finally:
            supervisor.cancel()
            watching.cancel()
            await redis.aclose()
        faults["worker_exits_restarted_by_supervisor"] = procs.worker_exits
        procs.stop()
        store = open_store(db, readonly=True)
        stored_errors = str(store.conn.execute("SELECT reason, payload FROM dead_letters")
                            .fetchall() + store.conn.execute("SELECT errors FROM reconcile_runs")
                            .fetchall())
        store.close()
    text = log.read_text(errors="replace")
    planted = planted_credentials(deliveries)
    leaks = credential_leaks(text, planted, secret_values)
    stored_leaks = credential_leaks(stored_errors, planted, secret_values)
    inbox = set(mirror["inbox"])
    poison = {f"evt_poison{n:07d}" for n in range(options.poison)}
    report: dict[str, Any] = {
        "setup": {"backend": "postgresql" if options.postgres else "sqlite",
                  "receivers": options.receivers, "workers": options.workers,
                  "reconcile_interval_seconds": options.reconcile_interval},
        "events_played": len(deliveries),
        "appointments": len(sim.appointments),
        "webhooks": delivered,
        "faults": faults,
        "events_acknowledged": len(acknowledged),
        # From the mirror's inbox (the truth); the worker's counters can miss a batch
        # committed just before a SIGKILL.
        "events_applied": len(inbox),
        "events_applied_newest_wins": mirror["outcomes"].get("applied", 0),
        "stale_ignored": mirror["outcomes"].get("stale", 0),
        "duplicates_ignored": stats.get("duplicates", 0),
        "worker_counters": stats,
        "dead_letters": mirror["dead_letters"],
        "acknowledged_missing_from_mirror": len(acknowledged - inbox),
        "applied_not_acknowledged": len(inbox - acknowledged - poison),
        "in_order": ordered,
        "appointments_compared": after["compared"],
        "mismatches_before_reconcile": before["mismatches"],
        "crons": cron,
        "mismatches_after_reconcile": after["mismatches"],
        "mismatched_fields_after_reconcile": after["fields"],
        "appointments_matching": after["matching"],
        "credential_leaks_in_logs": len(leaks),
        "credential_leaks_in_stored_errors": len(stored_leaks),
        "credentials_planted": len(planted) + len(secret_values),
        "log_lines_scanned": text.count("\n"),
        "log_warnings": warnings_by_event(text),
        "seconds": round(time.monotonic() - started, 1),
    }
    report["checks"] = checks(report, options)
    return report


async def _deliver(
    deliveries: list[Delivery], options: SoakOptions, native: str, standard: str,
    procs: Stack, redis_server: RedisServer, postgres: PostgresServer | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    chaos = Chaos(drop=options.drop, duplicate=options.duplicate, reorder=True)
    totals: Counter[str] = Counter()
    accepted: set[str] = set()
    retried: list[int] = []
    faults: dict[str, Any] = {}
    size = -(-len(deliveries) // CHUNKS)
    t0 = time.monotonic()
    urls = [f"{url}/webhooks/savvycal" for url in procs.urls]

    def noted(name: str, n: int) -> float:
        at = round(time.monotonic() - t0, 1)
        faults[f"{name}_at_chunk"] = n
        faults[f"{name}_at_seconds"] = at
        return at

    for n in range(CHUNKS):
        part = deliveries[n * size : (n + 1) * size]
        if not part:
            break
        scheme: Scheme = "native" if n % 2 == 0 else "standard"
        # A sender retries a refused delivery for a while (here up to ~25 s of backoff).
        sending = asyncio.create_task(deliver(
            part, urls, signer=signer(scheme, native if scheme == "native" else standard),
            chaos=chaos, seed=options.seed * 1000 + n, max_attempts=10, backoff=0.05,
        ))
        if n == KILL_RECEIVER_AT:
            await asyncio.sleep(FAULT_AFTER)
            procs.kill_receiver(0)
            say(f"  chunk {n}: receiver 0 SIGKILLed at {noted('receiver_killed', n)} s")
            if len(urls) == 1:  # nothing to fail over to: back soon, as a supervisor would
                await asyncio.sleep(DOWN_SECONDS)
                await procs.restart_receiver(0)
                say(f"  chunk {n}: receiver 0 back at {noted('receiver_restarted', n)} s")
        if n == KILL_RECEIVER_AT + 1 and procs.receivers[0] is None:
            await asyncio.sleep(FAULT_AFTER)
            await procs.restart_receiver(0)
            say(f"  chunk {n}: receiver 0 back at {noted('receiver_restarted', n)} s")
        if n == KILL_WORKER_AT:
            await asyncio.sleep(FAULT_AFTER)
            procs.kill_worker()
            say(f"  chunk {n}: a worker SIGKILLed mid-drain at {noted('worker_killed', n)} s,"
                " another started")
        if n == RESTART_POSTGRES_AT and postgres is not None:
            await asyncio.sleep(FAULT_AFTER)
            began = time.monotonic()
            noted("postgres_restarted", n)
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(postgres.start)
            faults["postgres_down_seconds"] = round(time.monotonic() - began, 2)
            say(f"  chunk {n}: PostgreSQL restarted ({faults['postgres_down_seconds']} s down)")
        if n == POISON_AT and options.poison:
            await _inject_poison(redis_server.url, deliveries, options.poison)
            faults["poison_events_injected"] = options.poison
            noted("poison_injected", n)
        if n == RESTART_REDIS_AT:
            await asyncio.sleep(FAULT_AFTER)
            began = time.monotonic()
            noted("redis_restarted", n)
            await asyncio.to_thread(redis_server.stop)
            await asyncio.sleep(DOWN_SECONDS)  # down long enough for the receivers to answer 503
            await asyncio.to_thread(redis_server.start)
            faults["redis_down_seconds"] = round(time.monotonic() - began, 2)
            say(f"  chunk {n}: Redis restarted ({faults['redis_down_seconds']} s down)")
        report = await sending
        totals.update(sent=report.sent, dropped=report.dropped, duplicated=report.duplicated,
                      accepted=report.accepted, failed=report.failed,
                      rejected=sum(report.rejected.values()),
                      retried=report.attempts - report.sent, failovers=report.failovers)
        retried.append(report.attempts - report.sent)
        accepted |= report.accepted_event_ids
        done = min((n + 1) * size, len(deliveries))
        rate = totals["sent"] / max(time.monotonic() - t0, 1e-9)
        say(f"  delivered {done}/{len(deliveries)} webhooks ({rate:,.0f} POST/s)")
    faults["delivery_seconds"] = round(time.monotonic() - t0, 1)
    return {**totals, "retried_per_chunk": retried, "accepted_ids": accepted}, faults


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


def _compare(sim: SavvyCalSim, db: str) -> dict[str, Any]:
    # Time passed at the provider too: what has expired is decided at the real "now".
    sim.now = max(sim.now, datetime.now(UTC))
    with open_store(db, readonly=True) as store:
        matching, fields, compared = compare(sim, store)
    return {"matching": matching, "mismatches": sum(fields.values()), "fields": dict(fields),
            "compared": compared}


async def _cron_phase(
    redis: aioredis.Redis, db: str, options: SoakOptions, watch: CronWatch
) -> dict[str, Any]:
    """Let go of the reconcile claim; wait for ``CRON_RUNS`` runs of the workers' reconcile
    cron; report the runs and every cron's claims against the intervals elapsed."""
    with open_store(db, readonly=True) as store:
        held_runs = store.conn.execute("SELECT count(*) FROM reconcile_runs").fetchone()[0]
    if await redis.get(RECONCILE_KEY) == HOLDER.encode():
        await redis.delete(RECONCILE_KEY)
    released = time.monotonic()
    say(f"reconcile claim released; waiting for {CRON_RUNS} runs of the workers' cron"
        f" (every {options.reconcile_interval} s)")
    deadline = released + options.timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with open_store(db, readonly=True) as store:
            runs = store.runs(limit=1000)[::-1]
        if sum(run["finished_at"] is not None for run in runs) >= CRON_RUNS:
            break
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - released
    interval = options.reconcile_interval
    watched = watch.seconds()
    # A task is claimed for its claim's length, so at most one claim starts per length, plus
    # one at the start of the window (the reconcile cron's window: since the soak let go).
    windows = {name: elapsed if name == "reconcile" else watched for name in CRONS}
    bounds = {name: int(windows[name] / seconds) + 1
              for name, seconds in watch.claim_seconds.items()}
    first = runs[0] if runs else {}
    return {
        "reconcile_runs_while_held": held_runs,
        "reconcile_runs": len(runs),
        "reconcile_seconds_watched": round(elapsed, 1),
        "reconcile_intervals_elapsed": round(elapsed / interval, 1),
        "claims": dict(watch.claims),
        "claims_at_most": bounds,
        "seconds_watched": round(watched, 1),
        "runs": [{"outcome": run["outcome"], "pages": run["pages"], "api_calls": run["api_calls"],
                  "drift": orjson.loads(run["drift"]), "repaired": run["repaired"],
                  "errors": len(orjson.loads(run["errors"]))} for run in runs],
        "first_run_repaired": first.get("repaired"),
    }


def checks(report: dict[str, Any], options: SoakOptions) -> dict[str, bool]:
    """Each verdict the exit status rests on."""
    faults, webhooks, crons = report["faults"], report["webhooks"], report["crons"]
    ordered = report["in_order"]
    expected_faults = ["receiver_killed", "receiver_restarted", "worker_killed",
                       "redis_restarted"] + (["postgres_restarted"] if options.postgres else [])
    claims, bounds = crons["claims"], crons["claims_at_most"]
    return {
        "every_fault_happened": all(f"{name}_at_chunk" in faults for name in expected_faults),
        "every_delivery_answered": webhooks["failed"] == webhooks["rejected"] == 0,
        "nothing_acknowledged_lost": report["events_acknowledged"] > 0
        and report["acknowledged_missing_from_mirror"] == 0,
        "nothing_applied_unacknowledged": report["applied_not_acknowledged"] == 0,
        "in_order_equal": ordered["mismatches"] == 0 and ordered["apply_failures"] == 0
        and ordered["inbox_disagreeing_with_delivery"] == 0 and ordered["rows_compared"] > 0,
        "poison_dead_lettered": report["dead_letters"] == faults.get("poison_events_injected", 0),
        "no_worker_died": faults["worker_exits_restarted_by_supervisor"] == 0,
        "reconcile_held_off": crons["reconcile_runs_while_held"] == 0,
        "crons_once_per_interval": all(1 <= claims.get(name, 0) <= bounds[name] for name in CRONS)
        and CRON_RUNS <= crons["reconcile_runs"] <= bounds["reconcile"],
        "reconciled": report["mismatches_after_reconcile"] == 0,
        "no_credential_leaked": report["credential_leaks_in_logs"] == 0
        and report["credential_leaks_in_stored_errors"] == 0,
    }


def main(argv: Iterable[str] | None = None) -> int:
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
    parser.add_argument("--postgres", action="store_true",
                        help="the mirror on a private PostgreSQL (default: a SQLite file)")
    parser.add_argument("--receivers", type=positive, default=SoakOptions.receivers,
                        help="`meetsync serve` processes, deliveries spread round-robin")
    parser.add_argument("--workers", type=positive, default=SoakOptions.workers,
                        help="`meetsync worker` processes")
    parser.add_argument("--reconcile-interval", type=positive, metavar="SECONDS",
                        help="the workers' RECONCILE_INTERVAL_SECONDS (default: 5 with --ci, "
                        f"else {SoakOptions.reconcile_interval}; long enough for one sweep)")
    args = parser.parse_args(None if argv is None else list(argv))
    configure("WARNING")  # our own logs to stderr: stdout carries the JSON report only
    options = SoakOptions(
        events=CI_EVENTS if args.ci else args.events, seed=args.seed, drop=args.drop,
        duplicate=args.duplicate, log_level=args.log_level, poison=args.poison,
        postgres=args.postgres, receivers=args.receivers, workers=args.workers,
        reconcile_interval=args.reconcile_interval or (5 if args.ci else 60),
    )
    with ExitStack() as stack:
        if args.keep:
            workdir = Path(args.keep)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        report = asyncio.run(run_soak(options, workdir, keep=bool(args.keep)))
    report["passed"] = all(report["checks"].values())
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if report["passed"] else 1


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
