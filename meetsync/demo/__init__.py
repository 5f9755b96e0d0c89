"""``meetsync demo``: the whole pipeline on one machine, under chaos, converging.

Starts its own Redis, the provider simulators' APIs, the receiver and a worker (as the Procfile
would: two processes, serving every provider at once), plays a workload per provider whose
webhooks are dropped, duplicated and reordered, measures how far the mirror is from each
provider, runs the reconciler once per provider, measures again. SavvyCal's part is in
``savvycal``, Zoom's in ``zoom``, Avon Health's (unsigned webhooks: hints the worker refetches)
in ``avon``, Consularia Connect's (no webhooks: polled) in ``consularia``; what they share in
``steps``, the stack's processes in ``stack``. Each provider's report ends in its own
``converged:`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from meetsync.demo import avon as demo_avon
from meetsync.demo import consularia as demo_consularia
from meetsync.demo import savvycal as demo_savvycal
from meetsync.demo import zoom as demo_zoom
from meetsync.demo.stack import (
    added,
    spawn,
    stats,
    stop,
    wait_ready,
    wait_until_applied,
    wait_until_idle,
)
from meetsync.demo.steps import say
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.providers.keys import settings_from_env
from meetsync.providers.savvycal.config import savvycal_settings
from meetsync.providers.savvycal.simulator import Delivery, SavvyCalSim, Scheme
from meetsync.settings import Settings
from meetsync.simulator import Chaos, serve_in_background


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


async def run_demo(options: DemoOptions, workdir: Path, *, kept: bool = False,
                   progress: Callable[[str], None] = say) -> int:
    started = time.monotonic()
    savvycal = "savvycal" in options.providers
    sim: SavvyCalSim | None = None
    deliveries: list[Delivery] = []
    if savvycal:
        say(f"playing a workload: {options.appointments} appointments (seed {options.seed})")
        sim, deliveries = demo_savvycal.play(options.appointments, options.seed, datetime.now(UTC))
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
            counted: dict[str, int] = {}
            chaos = Chaos(drop=options.drop, duplicate=options.duplicate, reorder=options.reorder)
            if sim:
                scheme: Scheme = "standard" if options.scheme == "standard" else "native"
                secret = standard if scheme == "standard" else native
                report = await demo_savvycal.deliver_all(
                    deliveries, url, chaos, scheme, secret, options.seed, progress)
                await wait_until_applied(redis, options.timeout, partitions)
                counted = await stats(redis)
            if zoom:
                zoom_report = await demo_zoom.deliver_all(zoom, url, chaos, options.seed,
                                                          progress)
                await wait_until_idle(redis, options.timeout, partitions)
                # The worker's counters are the stack's: Zoom's are what its part added.
                zoom_stats = added(await stats(redis), counted)
            if avon:
                before = await stats(redis)
                avon_report = await demo_avon.deliver_all(avon, url, chaos, options.seed,
                                                          progress)
                await wait_until_idle(redis, options.timeout, partitions)
                avon_stats = added(await stats(redis), before)
            if sim:
                outcomes.append(await demo_savvycal.reconcile_and_report(
                    sim, settings, report, counted, started, progress))
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
