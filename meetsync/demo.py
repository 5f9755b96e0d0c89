"""``meetsync demo``: the whole pipeline on one machine, under chaos, converging.

Starts its own Redis, the provider simulators' APIs, the receiver and a worker (as the Procfile
would: two processes, serving every provider at once), plays a workload per provider whose
webhooks are dropped, duplicated and reordered, measures how far the mirror is from each
provider, runs the reconciler once per provider, measures again. SavvyCal's part is here, Zoom's
in ``meetsync.demo_zoom``, Avon Health's (unsigned webhooks: hints the worker refetches) in
``meetsync.demo_avon``, Consularia Connect's (no webhooks: polled) in ``meetsync.demo_consularia``;
each provider's report ends in its own ``converged:`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from arq.constants import default_queue_name, in_progress_key_prefix

from meetsync import demo_avon, demo_consularia, demo_zoom
from meetsync.events import iso_utc, to_micros
from meetsync.providers.keys import settings_from_env
from meetsync.providers.savvycal import appointment_event
from meetsync.providers.savvycal.client import RequestBudget, SavvyCalClient
from meetsync.providers.savvycal.config import savvycal_settings
from meetsync.providers.savvycal.envelope import CREDENTIAL_LIFETIME
from meetsync.queue import STATS, backlog, refetch_job_id
from meetsync.redis_server import RedisServer, free_port
from meetsync.settings import Settings
from meetsync.simulator import Chaos, ProviderSim, deliver, played_until, serve_in_background
from meetsync.store import Store, open_store
from meetsync.worker.applier import StoreThread
from meetsync.worker.lanes import outstanding
from meetsync.worker.reconciler import Reconciler, drift, snapshot_of


@dataclass(frozen=True)
class DemoOptions:
    appointments: int = 2000
    seed: int = 1
    drop: float = 0.10
    duplicate: float = 0.10
    reorder: bool = True
    scheme: str = "standard"
    timeout: float = 300.0
    provider: str = "savvycal"  # savvycal, zoom, avon, consularia or all
    zoom_meetings: int = 200
    avon_appointments: int = 200
    consularia_appointments: int = 200

    @property
    def providers(self) -> tuple[str, ...]:
        return PROVIDERS if self.provider == "all" else (self.provider,)


PROVIDERS = ("savvycal", "zoom", "avon", "consularia")


def say(line: str) -> None:
    print(line, flush=True)


def compare(sim: ProviderSim, store: Store) -> tuple[int, Counter[str], int]:
    """(appointments matching, mismatches per field, appointments compared) in the window."""
    now = sim.now
    cutoff = iso_utc(now - CREDENTIAL_LIFETIME)
    truth = {
        appointment_id: snapshot_of(appointment_event(
            obj, event_id="truth", type="truth", occurred_at=to_micros(now)))
        for appointment_id, obj in sim.appointments.items()
    }
    in_window = {k: v for k, v in truth.items() if v["end_at"] is None or v["end_at"] > cutoff}
    mirror = store.snapshots(list(in_window))
    fields: Counter[str] = Counter()
    matching = 0
    for appointment_id, expected in in_window.items():
        found = drift(expected, mirror.get(appointment_id), expired=False)
        fields.update(found)
        matching += not found
    return matching, fields, len(in_window)


async def wait_until_applied(
    redis: aioredis.Redis, patience: float, partitions: int = 1
) -> None:
    """Every partition of the event stream empty, nothing held unacknowledged."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        waiting = await backlog(redis, partitions)
        if waiting.queued == 0 and waiting.pending == 0:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the worker did not drain the queue in time")


async def wait_until_idle(
    redis: aioredis.Redis, patience: float, partitions: int = 1
) -> None:
    """The event stream drained, the refetch lanes empty and no refetch job of an older release
    (``refetch_appointment``) waiting, deferred for a retry or running: what hints asked for is
    in the mirror. (Cron jobs are not waited
    for: arq keeps a cron job's in-progress key for a minute after it ran.)"""
    deadline = time.monotonic() + patience
    prefix = refetch_job_id("", "", "").split(":")[0].encode() + b":"  # b"refetch:"
    pattern = in_progress_key_prefix.encode() + prefix + b"*"
    while True:
        await wait_until_applied(redis, max(deadline - time.monotonic(), 0.1), partitions)
        queued = [job for job in await redis.zrange(default_queue_name, 0, -1)
                  if job.startswith(prefix)]
        running = [key async for key in redis.scan_iter(match=pattern, count=1000)]
        if (not queued and not running and await outstanding(redis) == 0
                and (await backlog(redis, partitions)).queued == 0):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not finish its refetch jobs in time")
        await asyncio.sleep(0.2)


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "meetsync.cli", command], env=env, stdout=out, stderr=out
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    """Terminate the stack's processes together, killing any that has not exited in 10 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_ready(url: str, proc: subprocess.Popen[bytes], patience: float = 30) -> None:
    deadline = time.monotonic() + patience
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the receiver exited at start-up; see its log")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("the receiver did not come up")


async def run_demo(options: DemoOptions, workdir: Path, *, kept: bool = False,
                   progress: Callable[[str], None] = say) -> int:
    started = time.monotonic()
    savvycal = "savvycal" in options.providers
    sim: ProviderSim | None = None
    deliveries: list[Any] = []
    if savvycal:
        say(f"playing a workload: {options.appointments} appointments (seed {options.seed})")
        sim, deliveries = played_until(
            datetime.now(UTC), options.seed, lambda sim: sim.play(options.appointments)
        )
        say(f"  {len(deliveries)} webhooks, {len(sim.appointments)} appointments at the provider")
    zoom = (demo_zoom.play(options.zoom_meetings, options.seed, datetime.now(UTC))
            if "zoom" in options.providers else None)
    avon = (demo_avon.play(options.avon_appointments, options.seed, datetime.now(UTC))
            if "avon" in options.providers else None)
    consularia = (demo_consularia.play(options.consularia_appointments, options.seed,
                                       datetime.now(UTC))
                  if "consularia" in options.providers else None)

    native = secrets.token_hex(16)
    standard = "whsec_" + secrets.token_urlsafe(24).replace("-", "A").replace("_", "B") + "="
    with RedisServer(data_dir=workdir / "redis") as redis_server, \
            contextlib.ExitStack() as apis:
        sim_root = apis.enter_context(serve_in_background(sim.asgi_app())) if sim else ""
        zoom_root = apis.enter_context(serve_in_background(
            zoom.sim.asgi_app(per_second_limit=demo_zoom.SIM_PER_SECOND))) if zoom else ""
        avon_root = apis.enter_context(serve_in_background(
            avon.sim.asgi_app(per_minute_limit=demo_avon.SIM_PER_MINUTE))) if avon else ""
        consularia_root = apis.enter_context(serve_in_background(
            consularia.sim.asgi_app(demo_consularia.api_config()))) if consularia else ""
        port = free_port()
        read_token = secrets.token_urlsafe(16)
        core: dict[str, Any] = {"db_path": str(workdir / "mirror.db"),
                                "redis_url": redis_server.url, "read_token": read_token}
        settings = savvycal_settings(
            savvycal_webhook_secrets=(native,), standard_webhook_secrets=(standard,),
            savvycal_api_url=f"{sim_root}/v1", savvycal_api_token=sim.token, **core,
        ) if sim else Settings(**core)
        env = {
            **os.environ, "PORT": str(port), "MEETSYNC_DB": settings.db_path,
            "REDIS_URL": redis_server.url, "MEETSYNC_READ_TOKEN": read_token,
            "RECONCILE_INTERVAL_SECONDS": "86400",
            # A kept log is for reading afterwards: the stack's INFO lines unless told otherwise.
            "LOG_LEVEL": os.environ.get("LOG_LEVEL") or ("INFO" if kept else "WARNING"),
        }
        env.pop("MEETSYNC_QUEUE_URL", None)  # the demo's queue is its own Redis too
        if sim:
            env |= {"SAVVYCAL_WEBHOOK_SECRET": native, "STANDARD_WEBHOOK_SECRET": standard,
                    "SAVVYCAL_API_URL": f"{sim_root}/v1",
                    "SAVVYCAL_API_TOKEN": sim.token}
        if zoom:
            env |= demo_zoom.environment(zoom.sim, zoom_root)
        if avon:
            env |= demo_avon.environment(avon.sim, avon_root)
        if consularia:
            env |= demo_consularia.environment(consularia.sim, consularia_root)
        apis_up = ", ".join(
            ([f"provider API {sim_root}/v1"] if sim else [])
            + ([f"Zoom API {zoom_root}/v2"] if zoom else [])
            + ([f"Avon API {avon_root}/v2"] if avon else [])
            + ([f"Consularia API {consularia_root}/v1"] if consularia else []))
        partitions = settings_from_env(env).queue_partitions  # the stack's, for the waits
        log = workdir / "stack.log"
        web = spawn("serve", env, log)
        work = spawn("worker", env, log)
        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_ready(url, web)
            say(f"stack up: receiver {url}, worker, redis {redis_server.url}, {apis_up}"
                + (f" (logs: {log})" if kept else ""))
            outcomes: list[int] = []
            report: dict[str, int] = {}
            stats: dict[str, int] = {}
            if sim:
                report = await _deliver(deliveries, url, options, native, standard, progress)
                await wait_until_applied(redis, options.timeout, partitions)
                stats = await _stats(redis)
            chaos = Chaos(drop=options.drop, duplicate=options.duplicate, reorder=options.reorder)
            if zoom:
                zoom_report = await demo_zoom.deliver_all(zoom, url, chaos, options.seed,
                                                          progress)
                await wait_until_idle(redis, options.timeout, partitions)
                # The worker's counters are the stack's: Zoom's are what its part added.
                zoom_stats = _added(await _stats(redis), stats)
            if avon:
                before = await _stats(redis)
                avon_report = await demo_avon.deliver_all(avon, url, chaos, options.seed,
                                                          progress)
                await wait_until_idle(redis, options.timeout, partitions)
                avon_stats = _added(await _stats(redis), before)
            if sim:
                outcomes.append(
                    await _reconcile_and_report(sim, settings, report, stats, started, progress))
            if zoom:
                zoom_settings = settings_from_env(env)
                outcomes.append(await demo_zoom.reconcile_and_report(
                    zoom, zoom_settings, url, zoom_report, zoom_stats, started, progress))
            if avon:
                outcomes.append(await demo_avon.reconcile_and_report(
                    avon, settings_from_env(env), avon_report, avon_stats, started, progress,
                    unheard=options.drop))
            if consularia:
                outcomes.append(await demo_consularia.poll_and_report(
                    consularia, settings_from_env(env), started, progress))
            return 0 if all(code == 0 for code in outcomes) else 1
        finally:
            await redis.aclose()
            stop(web, work)


def _added(total: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in total.items()}


async def _stats(redis: aioredis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(STATS)).items()}  # type: ignore[misc]


async def _deliver(deliveries: list[Any], url: str, options: DemoOptions, native: str,
                   standard: str, progress: Callable[[str], None]) -> dict[str, int]:
    chaos = Chaos(drop=options.drop, duplicate=options.duplicate, reorder=options.reorder)
    secret = standard if options.scheme == "standard" else native
    totals: Counter[str] = Counter()
    chunk = max(1, len(deliveries) // 10)
    t0 = time.monotonic()
    for n, start in enumerate(range(0, len(deliveries), chunk)):
        part = await deliver(
            deliveries[start : start + chunk], f"{url}/webhooks/savvycal",
            scheme=options.scheme, secret=secret, chaos=chaos,  # type: ignore[arg-type]
            seed=options.seed * 1000 + n,
        )
        totals.update(sent=part.sent, dropped=part.dropped, duplicated=part.duplicated,
                      accepted=part.accepted, failed=part.failed,
                      rejected=sum(part.rejected.values()))
        done = min(start + chunk, len(deliveries))
        rate = totals["sent"] / max(time.monotonic() - t0, 1e-9)
        progress(f"  delivered {done}/{len(deliveries)} webhooks ({rate:,.0f} POST/s)")
    return dict(totals)


async def _reconcile_and_report(
    sim: ProviderSim, settings: Settings, delivered: dict[str, int], stats: dict[str, int],
    started: float, progress: Callable[[str], None],
) -> int:
    # Time passed at the provider too: the comparison, the reconciler and the mirror's writes
    # share this one "now" (what has expired is decided once).
    sim.now = max(sim.now, datetime.now(UTC))
    store = open_store(settings.db_path, clock=lambda: sim.now)
    before_ok, before_fields, compared = compare(sim, store)
    replacements = store.conn.execute(
        "SELECT count(*) FROM meetings WHERE replaced_by IS NOT NULL").fetchone()[0]
    store.close()
    say(f"before reconcile: {before_ok}/{compared} appointments match the provider; "
        f"mismatches by field: {dict(sorted(before_fields.items())) or 'none'}")

    account = settings.account("savvycal")
    assert account is not None  # the demo's settings hold the simulator's account
    budget = RequestBudget(account.number("requests_per_minute"))
    thread = StoreThread(lambda: open_store(settings.db_path, clock=lambda: sim.now))
    async with SavvyCalClient(account.text("api_url") or "", account.text("api_token") or "",
                              budget=budget) as client:
        run = await Reconciler(client, thread, clock=lambda: sim.now,
                               progress=lambda line: progress(f"  {line}")).run()
    thread.close()
    store = open_store(settings.db_path)
    after_ok, after_fields, compared = compare(sim, store)
    store.close()
    summary = run.summary()
    per_1000 = 1000 * run.api_calls / max(run.appointments_seen, 1)
    say("\nreport")
    say(f"  webhooks: {delivered.get('sent', 0)} sent, {delivered.get('dropped', 0)} dropped, "
        f"{delivered.get('duplicated', 0)} duplicated, {delivered.get('accepted', 0)} accepted, "
        f"{delivered.get('rejected', 0) + delivered.get('failed', 0)} refused or failed")
    say(f"  worker: {stats.get('applied', 0)} applied, {stats.get('duplicates', 0)} duplicates "
        f"ignored, {stats.get('stale', 0)} stale ignored, {stats.get('dead_letters', 0)} dead "
        f"letters; {replacements} replacements followed")
    say(f"  reconciler: outcome {summary['outcome']}, {run.api_calls} API calls "
        f"({per_1000:.1f} per 1,000 appointments swept), {run.pages} pages, "
        f"{run.drifted} drifted, {run.repaired} repaired, drift by field "
        f"{summary['drift_by_field'] or 'none'}")
    say(f"  after reconcile: mismatches by field: {dict(sorted(after_fields.items())) or 'none'}")
    outside = len(sim.appointments) - compared
    if outside:
        say(f"  {outside} appointments ended over 24 h ago: outside the reconciler's window")
    say(f"  took {time.monotonic() - started:.1f} s")
    say(f"converged: {after_ok}/{compared} appointments match the provider")
    return 0 if after_ok == compared else 1


def main(options: DemoOptions, keep: str | None = None,
         progress: Callable[[str], None] = say) -> int:
    """Run the demo in ``keep`` (kept: mirror, Redis data, ``stack.log``) or a temporary
    directory; ``progress`` gets the delivery and reconcile progress lines."""
    if keep:
        workdir = Path(keep).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(options, workdir, kept=True, progress=progress))
    with tempfile.TemporaryDirectory(prefix="meetsync-demo-") as tmp:
        return asyncio.run(run_demo(options, Path(tmp), progress=progress))


__all__ = ["DemoOptions", "main"]
