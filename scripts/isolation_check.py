"""Isolation, checked from outside: a hint flood and a cross-account delivery, as an attacker and
a user see them.

    python scripts/isolation_check.py                     # 2,000 forged hints, Avon at 60/min
    python scripts/isolation_check.py --flood 500 --patience 60 --keep /tmp/iso

Starts its own Redis, the SavvyCal and Avon simulators' APIs and the Procfile's two processes
(``meetsync serve``, ``meetsync worker``) on a SQLite mirror, with two SavvyCal accounts, ``acme``
and ``beta``, each its own secret (docs/configuration.md: several accounts per provider). Then:

1. **Flood.** ``--flood`` unsigned Avon deliveries, each naming a distinct made-up appointment
   id, as fast as the receiver answers. Right after: a genuine change at Avon (a reschedule) and
   its hint, and a SavvyCal same-instant tie on one of acme's appointments (two signed deliveries
   with one ``created_at``: the worker settles a tie by refetching the appointment on acme's own,
   idle budget). Measured: how long until the mirror shows the rescheduled time and holds
   SavvyCal's refetch, how many reconcile runs the worker's cron made meanwhile, how much
   Redis holds for Avon, and Avon API calls.
2. **Another account's delivery.** beta signs an ``appointment.canceled`` for acme's appointment
   with another join_url, posted to the bare path and to ``/webhooks/savvycal/beta``. Measured:
   what the read API then serves for it, and which account the mirror records.

Prints a JSON report; exits 0 when every isolation check held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis

from meetsync.demo import avon as demo_avon
from meetsync.demo.stack import spawn, stop, wait_ready, wait_until_applied
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.providers.avon.simulator import AvonSim
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.providers.savvycal.simulator.signing import native_headers
from meetsync.simulator.serve import serve_in_background


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def until(check: Callable[[], Awaitable[bool]], patience: float) -> float | None:
    """Seconds until ``check`` holds, polled every 0.25 s; None when it never did."""
    started = time.monotonic()
    while time.monotonic() - started < patience:
        if await check():
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.25)
    return None


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        return c.execute(sql, args).fetchall()


async def flood(client: httpx.AsyncClient, url: str, count: int) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    semaphore = asyncio.Semaphore(64)

    async def one(n: int) -> None:
        body = orjson.dumps({"event": "appointment.updated",
                             "object": {"id": f"appt_forged{n:08d}"}})
        async with semaphore:
            answer = await client.post(url, content=body,
                                       headers={"content-type": "application/json"})
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(count)))
    return {"sent": count, "seconds": round(time.monotonic() - started, 2),
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def savvycal_body(envelope: dict[str, Any], event_id: str, *, at: str, type_: str | None = None,
                  status: str | None = None, join_url: str | None = None) -> bytes:
    """``envelope`` (a delivery's body) made into a new delivery."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(envelope))
    copy["id"], copy["created_at"] = event_id, at
    if type_:
        copy["data"]["type"] = type_
    obj = copy["data"]["object"]
    if status:
        obj["status"] = status
    if join_url and obj.get("meeting"):
        obj["meeting"]["join_url"] = join_url
    return orjson.dumps(copy)


async def redis_footprint(redis: aioredis.Redis) -> dict[str, Any]:
    keys = [k async for k in redis.scan_iter(count=1000)]
    avon_keys = [k for k in keys if b"avon" in k]
    members = 0
    for key in avon_keys:
        kind = await redis.type(key)
        size = {b"zset": redis.zcard, b"hash": redis.hlen, b"set": redis.scard,
                b"list": redis.llen, b"stream": redis.xlen}.get(kind)
        members += int(await size(key)) if size else 1  # type: ignore[misc]
    arq_queue = int(await redis.zcard("arq:queue"))
    stats = await redis.hgetall("meetsync:stats")  # type: ignore[misc]
    return {"keys": len(keys), "avon_keys": len(avon_keys), "avon_members": members,
            "arq_queue": arq_queue, "stats_fields": len(stats),
            "stats": {k.decode(): int(v) for k, v in sorted(stats.items())}}


async def run(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    savvycal = SavvyCalSim(options.seed, start=now)
    deliveries = savvycal.play(30)
    avon = AvonSim(options.seed, start=now)
    avon_deliveries = avon.play(20)
    secret = {"acme": secrets.token_hex(16), "beta": secrets.token_hex(16)}
    read_token = secrets.token_urlsafe(16)
    report: dict[str, Any] = {"flood": options.flood, "avon_budget_per_minute": options.budget}
    with RedisServer(data_dir=workdir / "redis") as redis_server, contextlib.ExitStack() as apis:
        sim_root = apis.enter_context(serve_in_background(savvycal.asgi_app()))
        avon_root = apis.enter_context(serve_in_background(
            avon.asgi_app(per_minute_limit=demo_avon.SIM_PER_MINUTE)))
        config = workdir / "meetsync.toml"
        config.write_text("".join(
            f'[providers.savvycal.accounts.{name}]\nwebhook_secret = "{value}"\n'
            f'api_url = "{sim_root}/v1"\napi_token = "{savvycal.token}"\n\n'
            for name, value in secret.items()))
        port = free_port()
        db = workdir / "mirror.db"
        env = {**os.environ, **demo_avon.environment(avon, avon_root),
               "AVON_API_REQUESTS_PER_MINUTE": str(options.budget),
               "MEETSYNC_CONFIG": str(config), "MEETSYNC_DB": str(db),
               "REDIS_URL": redis_server.url, "MEETSYNC_READ_TOKEN": read_token,
               "PORT": str(port), "RECONCILE_INTERVAL_SECONDS": "60", "LOG_LEVEL": "INFO"}
        env.pop("MEETSYNC_QUEUE_URL", None)
        log = workdir / "stack.log"
        web, work = spawn("serve", env, log), spawn("worker", env, log)
        redis = aioredis.Redis.from_url(redis_server.url)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url, web)
            async with httpx.AsyncClient(timeout=30) as client:
                # Warm-up: acme's appointments and Avon's, as their senders deliver them.
                for delivery in deliveries:
                    await client.post(f"{url}/webhooks/savvycal/acme", content=delivery.body,
                                      headers=native_headers(delivery.body, secret["acme"],
                                                             f"wh_{delivery.event_id}"))
                for avon_delivery in avon_deliveries:
                    await client.post(f"{url}/webhooks/avon", content=avon_delivery.body,
                                      headers={"content-type": "application/json"})
                await wait_until_applied(redis, 60)
                avon_held = len(avon.appointments)
                warmed = await until(lambda: _count(db, "avon", avon_held), 120)
                say(f"warm-up: acme's and Avon's appointments in the mirror ({warmed} s)")
                report["before_flood"] = await redis_footprint(redis)

                runs_before = len(query(db, "SELECT id FROM reconcile_runs"))
                report["flood_answered"] = await flood(client, f"{url}/webhooks/avon",
                                                       options.flood)
                flood_done = time.monotonic()
                say(f"flood: {report['flood_answered']}")

                # A genuine change at Avon, and its hint.
                target = next(a for a in sorted(avon.appointments)
                              if avon.status(a) in ("scheduled", "confirmed"))
                old_start = query(db, "SELECT start_at FROM appointments WHERE provider='avon'"
                                  " AND id=?", target)[0][0]
                change = avon.reschedule(target)
                await client.post(f"{url}/webhooks/avon", content=change.body,
                                  headers={"content-type": "application/json"})

                # A same-instant tie on one of acme's appointments.
                last: dict[str, dict[str, Any]] = {}
                for delivery in deliveries:
                    last[delivery.appointment_id] = delivery.envelope()
                tied = next(a for a, body in sorted(last.items())
                            if body["data"]["object"].get("meeting"))
                at = _newer(db, tied)
                for n in (1, 2):
                    body = savvycal_body(last[tied], f"evt_tie{n}", at=at,
                                         join_url=f"https://meet.example.com/tie{n}")
                    await client.post(f"{url}/webhooks/savvycal/acme", content=body,
                                      headers=native_headers(body, secret["acme"], f"wh_t{n}"))
                tie_seen = await until(lambda: _tie(db, tied, flagged=True), 30)

                async def rescheduled() -> bool:
                    rows = query(db, "SELECT start_at FROM appointments WHERE provider='avon'"
                                 " AND id=?", target)
                    return bool(rows) and rows[0][0] != old_start

                waits = await asyncio.gather(
                    until(rescheduled, options.patience),
                    until(lambda: _refetched(db, tied), options.patience),
                )
                report["after_flood"] = {
                    "genuine_avon_hint_applied_after_s": waits[0],
                    "savvycal_tie_flagged_after_s": tie_seen,
                    "savvycal_refetch_after_s": waits[1],
                    "patience_s": options.patience,
                    "reconcile_runs_during": len(query(db, "SELECT id FROM reconcile_runs"))
                    - runs_before,
                    "seconds_since_flood": round(time.monotonic() - flood_done, 1),
                    "avon_api_calls": dict(avon.calls),
                    "redis": await redis_footprint(redis),
                }
                say(f"after the flood: {report['after_flood']}")

                # beta's delivery for acme's appointment.
                victim = tied
                before = await _served(client, url, read_token, victim)
                at = _newer(db, victim)
                statuses = []
                for n, path in enumerate(("savvycal", "savvycal/beta")):
                    body = savvycal_body(last[victim], f"evt_beta{n}", at=at,
                                         type_="appointment.canceled", status="canceled",
                                         join_url="https://attacker.example.com/j/1")
                    answer = await client.post(
                        f"{url}/webhooks/{path}", content=body,
                        headers=native_headers(body, secret["beta"], f"wh_b{n}"))
                    statuses.append(answer.status_code)
                await wait_until_applied(redis, 60)
                await asyncio.sleep(1)
                after = await _served(client, url, read_token, victim)
                row = query(db, "SELECT account, status FROM appointments"
                            " WHERE provider='savvycal' AND id=?", victim)[0]
                report["cross_account"] = {
                    "beta_posts": statuses, "served_before": before, "served_after": after,
                    "appointment_account": row[0], "appointment_status": row[1],
                    "accounts_recorded": dict(query(
                        db, "SELECT account, count(*) FROM appointments"
                        " WHERE provider='savvycal' GROUP BY account")),
                    "stats": (await redis_footprint(redis))["stats"],
                }
                say(f"cross-account: {report['cross_account']}")
        finally:
            await redis.aclose()
            stop(web, work)
    flood_after = report["after_flood"]
    cross = report["cross_account"]
    report["checks"] = {
        "genuine_hint_applied": flood_after["genuine_avon_hint_applied_after_s"] is not None,
        "savvycal_refetch_not_starved": flood_after["savvycal_refetch_after_s"] is not None,
        "crons_ran": flood_after["reconcile_runs_during"] > 0,
        # The lane's bound (budget x the default 300 s horizon), its few counters, no job each
        "redis_bounded": flood_after["redis"]["avon_members"] <= options.budget * 5 + 10
        and flood_after["redis"]["arq_queue"] <= 1,
        "acme_kept_its_appointment": cross["served_after"] == cross["served_before"]
        and cross["appointment_status"] != "canceled",
        "accounts_recorded": set(cross["accounts_recorded"]) == {"acme"},
    }
    return report


def _newer(db: Path, appointment_id: str) -> str:
    """A ``created_at`` just after the snapshot the mirror holds for the appointment: a
    workload's last deliveries may be dated ahead of the wall clock (within the skew
    tolerance), and an older one would only be stale."""
    (version,) = query(db, "SELECT version_at FROM appointments WHERE provider='savvycal'"
                       " AND id=?", appointment_id)[0]
    return datetime.fromtimestamp((int(version) + 1000) / 1e6, UTC).isoformat()


async def _count(db: Path, provider: str, at_least: int) -> bool:
    held = query(db, "SELECT count(*) FROM appointments WHERE provider=?", provider)[0][0]
    return int(held) >= at_least


async def _tie(db: Path, appointment_id: str, *, flagged: bool) -> bool:
    rows = query(db, "SELECT tie_at FROM appointments WHERE provider='savvycal' AND id=?",
                 appointment_id)
    return bool(rows) and (rows[0][0] is not None) == flagged


async def _refetched(db: Path, appointment_id: str) -> bool:
    """Whether the worker fetched the appointment from SavvyCal (a refetch reached the inbox,
    whatever its outcome: one stamped before a tie dated ahead of the clock is stale)."""
    return bool(query(db, "SELECT 1 FROM events WHERE provider='savvycal' AND appointment_id=?"
                      " AND type LIKE 'refetch%'", appointment_id))


async def _served(client: httpx.AsyncClient, url: str, token: str, appointment_id: str
                  ) -> dict[str, Any]:
    answer = await client.get(f"{url}/v1/savvycal/appointments/{appointment_id}/meeting",
                              headers={"authorization": f"Bearer {token}"})
    body = answer.json() if answer.status_code == 200 else {}
    return {"status_code": answer.status_code, "meeting_status": body.get("status"),
            "join_url": body.get("join_url")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=2000, help="forged Avon hints (2000)")
    parser.add_argument("--budget", type=int, default=60, help="Avon requests a minute (60)")
    parser.add_argument("--patience", type=float, default=120, help="seconds to wait (120)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep the work dir (logs, mirror) here")
    options = parser.parse_args()
    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run(options, options.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="meetsync-isolation-") as tmp:
            report = asyncio.run(run(options, Path(tmp)))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
