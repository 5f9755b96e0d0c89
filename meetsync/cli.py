"""The ``meetsync`` command: run the stack, and look inside the mirror."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import structlog

from meetsync.log import configure
from meetsync.redis_server import RedisServer, RedisStartError
from meetsync.settings import Settings, SettingsError

log = structlog.get_logger(__name__)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _uvicorn_kwargs() -> dict[str, Any]:
    """httptools + uvloop when installed (about twice plain h11's throughput here)."""
    kwargs: dict[str, Any] = {"log_config": None, "access_log": False}
    with contextlib.suppress(ImportError):
        import httptools  # noqa: F401

        kwargs["http"] = "httptools"
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        kwargs["loop"] = "uvloop"
    return kwargs


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from meetsync.webhooks import create_app

    settings.require_receiver_secrets()
    settings.require_redis()
    uvicorn.run(create_app(settings), host=args.host, port=args.port, **_uvicorn_kwargs())
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the worker; when Redis drops away, start it again with a backoff.

    arq's loop does not survive a lost connection, so this loop is the worker's supervisor:
    entries it had read but not committed stay pending and are claimed again.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from meetsync.worker.main import run

    settings.require_redis()
    delay = 1.0
    while True:
        started = time.monotonic()
        try:
            asyncio.run(run(settings))
            return 0
        except (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError) as exc:
            if time.monotonic() - started > 60:
                delay = 1.0
            log.error("worker_redis_lost", error_type=type(exc).__name__, retry_in=delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


@contextlib.contextmanager
def local_redis(settings: Settings, data_dir: Path) -> Iterator[Settings]:
    """The settings with ``REDIS_URL`` pointing at our own redis-server when it is unset."""
    if settings.redis_url:
        yield settings
        return
    with RedisServer(data_dir=data_dir) as server:
        log.info("redis_started", url=server.url, data_dir=str(data_dir))
        yield replace(settings, redis_url=server.url)


def dev_settings(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Fill what a developer's machine lacks with fresh local values; returns what was made up
    (printed once so a developer can sign test deliveries; values from the environment never
    are)."""
    made: dict[str, str] = {}
    if not (settings.savvycal_webhook_secrets or settings.standard_webhook_secrets):
        made["SAVVYCAL_WEBHOOK_SECRET"] = secrets.token_hex(16)
        made["STANDARD_WEBHOOK_SECRET"] = "whsec_" + _b64(secrets.token_bytes(24))
        settings = replace(
            settings,
            savvycal_webhook_secrets=(made["SAVVYCAL_WEBHOOK_SECRET"],),
            standard_webhook_secrets=(made["STANDARD_WEBHOOK_SECRET"],),
        )
    if not settings.read_token:
        made["MEETSYNC_READ_TOKEN"] = secrets.token_urlsafe(24)
        settings = replace(settings, read_token=made["MEETSYNC_READ_TOKEN"])
    return settings, made


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


async def run_stack(settings: Settings, host: str, port: int) -> None:
    """The receiver and a worker in one process (dev and demo)."""
    import uvicorn
    from arq.worker import create_worker

    from meetsync.webhooks import create_app
    from meetsync.worker import worker_settings

    worker = create_worker(worker_settings(settings), handle_signals=False)
    config = uvicorn.Config(create_app(settings), host=host, port=port, **_uvicorn_kwargs())
    server = uvicorn.Server(config)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await server.serve()
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        await worker.close()


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    settings, made = dev_settings(settings)
    with local_redis(settings, Path(args.data_dir) / "redis") as settings:
        base = f"http://{args.host}:{args.port}"
        lines = [
            "meetsync dev stack",
            f"  webhooks   POST {base}/webhooks/savvycal",
            f"  read API   GET  {base}/v1/appointments/{{id}}/meeting",
            f"  mirror     {settings.db_path}",
            f"  redis      {settings.redis_url}",
        ]
        if made:
            lines.append("  generated for this run (export them to keep them across restarts):")
            lines += [f"    {name}={value}" for name, value in made.items()]
        print("\n".join(lines) + "\n", flush=True)
        asyncio.run(run_stack(settings, args.host, args.port))
    return 0


def _open_store(settings: Settings) -> Any:
    from meetsync.store import open_store

    if not Path(settings.db_path).exists():
        raise SettingsError(f"no mirror at MEETSYNC_DB={settings.db_path}")
    return open_store(settings.db_path, readonly=True)


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    store = _open_store(settings)
    if args.kind == "meeting":
        found = store.latest_meeting(args.id) if args.follow else store.meeting(args.id)
    elif args.kind == "appointment":
        found = store.appointment(args.id)
        if found is not None:
            found["meeting"] = store.current_meeting(args.id)
    else:
        found = store.current_meeting(args.id)
    if found is None:
        print(f"{args.kind} {args.id} not found", file=sys.stderr)
        return 1
    _print_json(found)
    return 0


def cmd_changes(settings: Settings, args: argparse.Namespace) -> int:
    _print_json(_open_store(settings).changes_since(args.since, args.limit))
    return 0


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    import redis

    from meetsync.worker.queue import EVENT_STREAM, STATS

    client = redis.Redis.from_url(settings.require_redis(), socket_timeout=5)
    counters = {k.decode(): int(v) for k, v in client.hgetall(STATS).items()}  # type: ignore[union-attr]
    _print_json({"queued": client.xlen(EVENT_STREAM), "counters": counters})
    return 0


async def _reconcile(settings: Settings, scope: str, filters: list[dict[str, Any]] | None) -> int:
    from meetsync.providers.savvycal.client import ApiError
    from meetsync.store import open_store
    from meetsync.worker.applier import StoreThread
    from meetsync.worker.main import api_client
    from meetsync.worker.reconciler import Reconciler

    def progress(line: str) -> None:
        print(f"\r{line:<78}", end="", file=sys.stderr, flush=True)

    store = StoreThread(lambda: open_store(settings.db_path))
    try:
        async with api_client(settings) as client:
            reconciler = Reconciler(client, store, scope=scope, filters=filters,  # type: ignore[arg-type]
                                    progress=progress)
            try:
                report = await reconciler.run()
            except ApiError as exc:  # pragma: no cover - run() records API errors itself
                print(f"meetsync: {exc}", file=sys.stderr)
                return 1
    finally:
        store.close()
    print(file=sys.stderr)
    _print_json(report.summary())
    return 0 if report.outcome == "success" else 1


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_api_token()
    return asyncio.run(_reconcile(settings, "all" if args.all else "window", None))


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_api_token()
    filters = [
        {"field": "start_at", "op": op, "value": value}
        for op, value in ((">=", args.since), ("<", args.until)) if value
    ]
    return asyncio.run(_reconcile(settings, "all", filters or None))


def cmd_dead_letters_list(settings: Settings, args: argparse.Namespace) -> int:
    _print_json(_open_store(settings).dead_letters(include_replayed=args.all))
    return 0


def cmd_dead_letters_replay(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_api_token()
    if not Path(settings.db_path).exists():
        raise SettingsError(f"no mirror at MEETSYNC_DB={settings.db_path}")
    return asyncio.run(_replay_dead_letters(settings, None if args.all else args.id))


async def _replay_dead_letters(settings: Settings, letter_id: int | None) -> int:
    """Refetch each letter's appointment (the provider's word now, not the old payload), apply
    it through the guarded path, and mark the letter replayed. Exit 1 if any is left."""
    from meetsync.store import open_store
    from meetsync.worker.main import api_client

    store = open_store(settings.db_path)
    try:
        if letter_id is None:
            letters = store.dead_letters()
        else:
            found = store.dead_letter(letter_id)
            if found is None:
                print(f"dead letter {letter_id} not found", file=sys.stderr)
                return 1
            letters = [found]
        async with api_client(settings) as client:
            results = [await _replay_one(store, client, letter) for letter in letters]
    finally:
        store.close()
    _print_json(results)
    return 0 if all(r["outcome"] in ("replayed", "already replayed") for r in results) else 1


async def _replay_one(store: Any, client: Any, letter: dict[str, Any]) -> dict[str, Any]:
    from meetsync.providers.savvycal.client import ApiError
    from meetsync.store import StoreBusy
    from meetsync.worker.main import refetch

    result: dict[str, Any] = {"id": letter["id"], "event_id": letter["event_id"],
                              "appointment_id": letter["appointment_id"]}
    if letter["replayed_at"] is not None:
        return {**result, "outcome": "already replayed"}
    if not letter["appointment_id"]:
        return {**result, "outcome": "skipped", "reason": "no appointment id to refetch"}
    event_id = f"replay:{letter['id']}:{time.time_ns() // 1000}"
    held = store.appointment(letter["appointment_id"])
    times = (held["start_at"], held["end_at"]) if held else (None, None)
    try:
        event = await refetch(client, letter["appointment_id"], event_id, keep_times=times)
        _, failures = store.apply([event])
    except (ApiError, StoreBusy) as exc:
        return {**result, "outcome": "failed", "reason": str(exc)}
    if failures:
        return {**result, "outcome": "failed", "reason": failures[0].reason}
    store.mark_replayed(letter["id"])
    log.info("dead_letter_replayed", dead_letter=letter["id"], event_id=letter["event_id"])
    return {**result, "outcome": "replayed", "type": event.type}


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from meetsync.demo import DemoOptions
    from meetsync.demo import main as demo

    configure(os.environ.get("LOG_LEVEL", "WARNING"))  # the report is the output here

    options = DemoOptions(
        appointments=args.appointments, seed=args.seed, drop=args.drop,
        duplicate=args.duplicate, reorder=not args.no_reorder, scheme=args.scheme,
    )
    return demo(options, keep=args.keep)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="meetsync", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    port = int(os.environ.get("PORT") or 8000)

    p = sub.add_parser("serve", help="run the webhook receiver and read API (Procfile web)")
    p.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server is meant to listen
    p.add_argument("--port", type=int, default=port)
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("worker", help="run the applier, jobs and crons (Procfile worker)")
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser("dev", help="receiver + worker + a Redis of its own when REDIS_URL is unset")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--data-dir", default=".meetsync", help="where the local Redis keeps its AOF")
    p.set_defaults(fn=cmd_dev)

    p = sub.add_parser("show", help="print a meeting or an appointment from the mirror as JSON")
    p.add_argument("kind", choices=["meeting", "appointment", "current-meeting"])
    p.add_argument("id")
    p.add_argument("--follow", action="store_true", help="meeting: follow replacements")
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("changes", help="print the change log after a sequence number")
    p.add_argument("--since", type=int, default=0)
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(fn=cmd_changes)

    p = sub.add_parser("reconcile", help="compare the mirror with the provider API and repair")
    p.add_argument("--once", action="store_true", help="one run, print its summary (default)")
    p.add_argument("--all", action="store_true",
                   help="sweep every appointment, not only upcoming and recently ended ones")
    p.set_defaults(fn=cmd_reconcile)

    p = sub.add_parser("backfill", help="load every appointment the provider has (or a window)")
    p.add_argument("--since", help="ISO-8601: appointments starting at or after this")
    p.add_argument("--until", help="ISO-8601: appointments starting before this")
    p.set_defaults(fn=cmd_backfill)

    p = sub.add_parser("demo", help="the whole stack against the simulator, under chaos")
    p.add_argument("--appointments", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--drop", type=float, default=0.10)
    p.add_argument("--duplicate", type=float, default=0.10)
    p.add_argument("--no-reorder", action="store_true")
    p.add_argument("--scheme", choices=["standard", "native"], default="standard")
    p.add_argument("--keep", metavar="DIR", help="keep the mirror, Redis data and logs in DIR")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("dead-letters", help="events the worker gave up on: list, replay")
    letters = p.add_subparsers(dest="action", required=True)
    q = letters.add_parser("list", help="print the dead letters awaiting replay as JSON")
    q.add_argument("--all", action="store_true", help="include the replayed ones")
    q.set_defaults(fn=cmd_dead_letters_list)
    q = letters.add_parser(
        "replay", help="refetch each letter's appointment from the provider, apply it, mark it"
    )
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="one dead letter, by its id")
    which.add_argument("--all", action="store_true", help="every letter awaiting replay")
    q.set_defaults(fn=cmd_dead_letters_replay)

    p = sub.add_parser("stats", help="queue length and pipeline counters")
    p.set_defaults(fn=cmd_stats)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        settings = Settings.from_env()
        return int(args.fn(settings, args))
    except (SettingsError, RedisStartError) as exc:
        print(f"meetsync: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
