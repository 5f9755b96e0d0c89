"""Commands that run the stack: ``serve``, ``worker``, ``dev``, ``demo``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType

import click
import structlog

from meetsync.cli._common import require, runtime, uvicorn_kwargs
from meetsync.cli.devstate import DevState, dev_settings, stored_db
from meetsync.config import user_path
from meetsync.settings import Settings

log = structlog.get_logger(__name__)


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True,  # noqa: S104 - a server listens
              help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: $PORT].")
def serve(host: str, port: int | None) -> int:
    """Run the webhook receiver and read API (Procfile `web`)."""
    import uvicorn

    from meetsync.webhooks import create_app

    settings = runtime().settings()
    require(settings, redis=True, read_token=True, webhook_secret=True)
    warn_unreachable_redis(settings)
    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Change streams never end on their own: end them now, or shutdown waits for them.
            app.state.change_feed.stop()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port or settings.port, **uvicorn_kwargs())
    Server(config).run()
    return 0


def warn_unreachable_redis(settings: Settings) -> None:
    """Say at start-up when Redis does not answer: the receiver starts anyway (Redis may come
    up after it; ``/readyz`` says 503 meanwhile), but every delivery would get 503."""
    import redis
    from redis.exceptions import RedisError

    from meetsync.queue import cluster_url

    urls = {"REDIS_URL": settings.redis_url, "MEETSYNC_QUEUE_URL": settings.queue_url}
    for name, url in urls.items():
        if not url or cluster_url(url):
            continue  # unset, or a cluster (its client discovers nodes; /readyz checks it)
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except (RedisError, OSError) as exc:
            log.warning("redis_unreachable_at_start", setting=name,
                        error_type=type(exc).__name__,
                        consequence="webhooks answer 503 and /readyz fails until it answers")
        finally:
            client.close()


@click.command()
def worker() -> int:
    """Run the applier, refetch jobs and crons (Procfile `worker`).

    When Redis drops away the worker starts again with a backoff: entries it had read but not
    committed stay pending and are claimed again. So it does when the mirror cannot be opened
    at start-up (a PostgreSQL restarting, or not up yet); once running, the applier waits out
    an unreachable mirror on its own.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.exceptions import WatchError

    from meetsync.store import StoreBusy
    from meetsync.worker.main import run

    settings = runtime().settings()
    require(settings, redis=True)
    delay = 1.0
    while True:
        started = time.monotonic()
        try:
            asyncio.run(run(settings))
            return 0
        # WatchError: redis-py's word for a connection lost inside arq's WATCH (a cron being
        # queued as Redis restarts).
        except (RedisConnectionError, RedisTimeoutError, WatchError, ConnectionError, OSError,
                StoreBusy) as exc:
            if time.monotonic() - started > 60:
                delay = 1.0
            if isinstance(exc, StoreBusy):
                log.error("worker_store_unavailable", error=str(exc), retry_in=delay)
            else:
                log.error("worker_redis_lost", error_type=type(exc).__name__, retry_in=delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on [default: $PORT].")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="State directory: dev.json, the lock, Redis's AOF [default: .meetsync].")
def dev(host: str, port: int | None, data_dir: str | None) -> int:
    """Receiver + worker in one process, with a Redis of its own when REDIS_URL is unset.

    Secrets and the read token it generates, and its Redis port, are kept in DATA_DIR/dev.json
    (0600) and reused on the next start; other commands run beside it find its Redis and mirror
    there. A second `dev` on the same DATA_DIR is refused (exit 4).
    """
    from meetsync.store.postgres import shown

    rt = runtime()
    settings = rt.settings()
    state = DevState(user_path(data_dir) if data_dir else rt.data_dir)
    with state.locked():
        saved = state.read()
        settings, made = dev_settings(settings, saved)
        reused = {k: v for k, v in made.items() if saved.get("generated", {}).get(k) == v}
        with local_redis(settings, state.directory / "redis", saved.get("redis_port")) as running:
            port = port or running.port
            state.write({
                "pid": os.getpid(), "url": f"http://{host}:{port}",
                # a REDIS_URL from the environment (it may hold a password) stays there
                "redis_url": None if settings.redis_url else running.redis_url,
                **stored_db(running.db_path),
                "redis_port": None if settings.redis_url else _port_of(running.redis_url),
                "generated": made,
            })
            base = f"http://{host}:{port}"
            lines = [
                "meetsync dev stack",
                f"  webhooks   POST {base}/webhooks/{{provider}}",
                f"  read API   GET  {base}/v1/appointments/{{id}}/meeting",
                f"  mirror     {shown(running.db_path)}",
                f"  redis      {running.redis_url if not settings.redis_url else '$REDIS_URL'}",
                f"  state      {state.file}",
            ]
            if reused:
                lines.append(f"  reusing the secrets generated earlier (in {state.file})")
            fresh = {k: v for k, v in made.items() if k not in reused}
            if fresh:
                lines.append("  generated (kept in the state file for the next start):")
                lines += [f"    {name}={value}" for name, value in fresh.items()]
            click.echo("\n".join(lines) + "\n")
            # uvicorn re-raises SIGTERM once it has shut down: unwind (and stop our Redis)
            # instead of dying there.
            signal.signal(signal.SIGTERM, _unwind)
            signal.signal(signal.SIGINT, _interrupted)
            asyncio.run(run_stack(running, host, port))
    return 0


def _unwind(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # exit 130, after the same unwinding


def _port_of(url: str | None) -> int | None:
    from urllib.parse import urlsplit

    return urlsplit(url).port if url else None


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # as redis-server binds: a port left in TIME_WAIT by the last run is free to it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def local_redis(settings: Settings, data_dir: Path, port: int | None = None) -> Iterator[Settings]:
    """The settings with ``REDIS_URL`` pointing at our own redis-server when it is unset
    (on ``port`` when that is free)."""
    from meetsync.dev.redis_server import RedisServer, stop_orphan

    if settings.redis_url:
        yield settings
        return
    # We hold dev's lock: a server still on this directory is an earlier dev's orphan (that
    # dev was killed before it could stop it). End it rather than start a second on its AOF.
    orphan = stop_orphan(data_dir.resolve())
    if orphan is not None:
        log.warning("redis_orphan_stopped", pid=orphan, data_dir=str(data_dir))
    server = RedisServer(data_dir=data_dir, die_with_parent=True)
    if port and _port_free(port):
        server.port = port
    with server:
        log.info("redis_started", url=server.url, data_dir=str(data_dir))
        yield replace(settings, redis_url=server.url)


async def run_stack(settings: Settings, host: str, port: int) -> None:
    """The receiver and a worker in one process."""
    import uvicorn
    from arq.worker import create_worker

    from meetsync.webhooks import create_app
    from meetsync.worker import worker_settings

    worker = create_worker(worker_settings(settings), handle_signals=False)
    config = uvicorn.Config(create_app(settings), host=host, port=port, **uvicorn_kwargs())
    server = uvicorn.Server(config)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await server.serve()
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        await worker.close()


@click.command()
@click.option("--appointments", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Appointments in the workload.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed of the workload and the chaos.")
@click.option("--drop", type=click.FloatRange(0, 1), default=0.10, show_default=True,
              help="Fraction of webhooks never delivered (0-1).")
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.10, show_default=True,
              help="Fraction of webhooks delivered twice (0-1).")
@click.option("--no-reorder", is_flag=True, help="Deliver in order (default: shuffled).")
@click.option("--scheme", type=click.Choice(["standard", "native"]), default="standard",
              show_default=True, help="Signature scheme of the deliveries.")
@click.option("--provider", type=click.Choice(["savvycal", "zoom", "avon", "consularia", "all"]),
              default="all",
              show_default=True,
              help="Which providers' simulators to play: all of them share one stack.")
@click.option("--zoom-meetings", type=click.IntRange(min=1), default=200, show_default=True,
              help="Meetings in the Zoom workload.")
@click.option("--avon-appointments", type=click.IntRange(min=1), default=200, show_default=True,
              help="Appointments in the Avon Health workload (unsigned webhook hints).")
@click.option("--consularia-appointments", type=click.IntRange(min=1), default=200,
              show_default=True,
              help="Appointments in the Consularia Connect workload (no webhooks: polled).")
@click.option("--keep", metavar="DIR", type=click.Path(file_okay=False),
              help="Keep the mirror, Redis data and the stack's log in DIR [default: a "
                   "temporary directory, removed at exit].")
def demo(appointments: int, seed: int, drop: float, duplicate: float, no_reorder: bool,
         scheme: str, provider: str, zoom_meetings: int, avon_appointments: int,
         consularia_appointments: int, keep: str | None) -> int:
    """The whole stack against the provider simulators, under chaos, converging.

    One receiver and one worker serve every provider played; each provider's report ends in
    its own `converged:` line. Exit 0 only when, for every provider played, every appointment
    (every Zoom meeting) matches its provider in the end.
    """
    from meetsync.cli.progress import reporter
    from meetsync.demo import DemoOptions
    from meetsync.demo import main as run_demo
    from meetsync.log import configure

    rt = runtime()
    settings = rt.settings()
    configure(settings.log_level if rt.env.get("LOG_LEVEL") else "WARNING")  # the report speaks
    options = DemoOptions(appointments=appointments, seed=seed, drop=drop, duplicate=duplicate,
                          reorder=not no_reorder, scheme=scheme, provider=provider,
                          zoom_meetings=zoom_meetings, avon_appointments=avon_appointments,
                          consularia_appointments=consularia_appointments)
    with reporter(sys.stdout) as progress:
        return run_demo(options, keep=str(user_path(keep)) if keep else None, progress=progress)
