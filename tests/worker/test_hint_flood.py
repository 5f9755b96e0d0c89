"""A flood of forged hints for one account, as an attacker sends it: the real receiver app
(in-process ASGI), a real arq worker (``worker_settings``) on a real Redis, the Avon and
SavvyCal simulators over real HTTP, a real mirror (SQLite and PostgreSQL).

Isolation (docs/providers.md: Connecting Avon Health): the flood costs Avon's lane at most its
bound, in Redis and in fetches; another account's refetch and the crons run on time; a genuine
hint for an appointment the mirror holds is fetched before the forged ids waiting ahead of it.

``MEETSYNC_FLOOD`` (default 1000) and ``MEETSYNC_FLOOD_HORIZON`` (default 10 s) size the attack;
each test prints what an attacker would see (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from arq.worker import create_worker

from meetsync.dev.redis_server import RedisServer
from meetsync.events import to_micros
from meetsync.providers.avon.mapping import appointment_event
from meetsync.providers.avon.simulator import AvonSim
from meetsync.providers.keys import settings_from_env
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.queue import STATS, reconcile_runs_key, request_refetch
from meetsync.settings import Settings
from meetsync.simulator import serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.main import worker_settings
from tests.sql import query

FLOOD = int(os.environ.get("MEETSYNC_FLOOD", "1000"))
HORIZON = int(os.environ.get("MEETSYNC_FLOOD_HORIZON", "10"))
AVON_PER_MINUTE = 60
BOUND = AVON_PER_MINUTE * HORIZON // 60  # the Avon lane's bound (worker/lanes.py)
ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def recording(app: ASGI, seen: list[str], hold: set[str] | None = None) -> ASGI:
    """``app`` noting each request's path (the order the provider is asked in); a path
    ending in an id in ``hold`` hangs while it is there (a fetch that does not return)."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
            # ``hold`` is emptied by the test, on another thread's loop: polled, not awaited
            while hold and scope["path"].rsplit("/", 1)[-1] in hold:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await app(scope, receive, send)

    return wrapped


def forged(n: int) -> bytes:
    return orjson.dumps({"event": "appointment.updated",
                         "object": {"id": f"appt_forged{n:010d}", "status": "completed"}})


@dataclass
class Flood:
    settings: Settings
    redis: aioredis.Redis
    http: httpx.AsyncClient
    avon: AvonSim
    savvycal: SavvyCalSim
    avon_paths: list[str]
    worker_ctx: dict[str, Any] = field(default_factory=dict)

    async def hint(self, body: bytes) -> httpx.Response:
        return await self.http.post("/webhooks/avon", content=body,
                                    headers={"content-type": "application/json"})

    async def flood(self, n: int = FLOOD) -> float:
        """``n`` forged hints with distinct ids, 50 at a time; returns the seconds it took."""
        started = time.monotonic()
        for first in range(0, n, 50):
            answers = await asyncio.gather(*(self.hint(forged(i))
                                             for i in range(first, min(first + 50, n))))
            assert {a.status_code for a in answers} == {202}
        return time.monotonic() - started

    async def avon_state(self) -> int:
        """What Redis holds for Avon, however it is kept: every member, field or element of
        every key naming it, and every job in arq's queue naming it."""
        total = 0
        async for key in self.redis.scan_iter(match="*avon*", count=1000):
            kind = (await self.redis.type(key)).decode()
            size = {"zset": self.redis.zcard, "hash": self.redis.hlen, "list": self.redis.llen,
                    "set": self.redis.scard}.get(kind)
            total += int(await size(key)) if size else 1  # type: ignore[operator]
        async for _member, _ in self.redis.zscan_iter("arq:queue", match="*avon*"):
            total += 1
        return total

    async def stats(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self.redis.hgetall(STATS)).items()}

    def fetched(self, provider: str, appointment_id: str) -> bool:
        """Whether a refetch of the appointment was applied (the inbox names it)."""
        return bool(query(self.settings.db_path,
                          "SELECT id FROM events WHERE provider = ? AND appointment_id = ?"
                          " AND id LIKE 'refetch:%'", (provider, appointment_id)))


async def until(check: Callable[[], Awaitable[bool]], patience: float) -> float | None:
    """Seconds until ``check`` holds, or None if it did not within ``patience``."""
    started = time.monotonic()
    while time.monotonic() - started < patience:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    return None


@asynccontextmanager
async def flood_stack(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
    *, hold: set[str] | None = None,
) -> AsyncIterator[Flood]:
    now = datetime.now(UTC).replace(microsecond=0)
    avon = AvonSim(3, start=now - timedelta(hours=1))
    savvycal = SavvyCalSim(7, start=now - timedelta(hours=1), token="tok")
    paths: list[str] = []
    avon_app = recording(avon.asgi_app(per_minute_limit=100_000), paths, hold)
    with serve_in_background(avon_app) as avon_root, \
            serve_in_background(savvycal.asgi_app()) as savvycal_root:
        credentials = avon.credentials
        settings = settings_from_env({
            "MEETSYNC_DB": str(db_path), "REDIS_URL": redis_server.url,
            "MEETSYNC_READ_TOKEN": "read-token", "AVON_API_URL": avon_root,
            "AVON_CLIENT_ID": credentials.client_id,
            "AVON_CLIENT_SECRET": credentials.client_secret,
            "AVON_USER_JWT": credentials.user_jwt, "AVON_ACCOUNT": credentials.account,
            "AVON_API_REQUESTS_PER_MINUTE": str(AVON_PER_MINUTE),
            "SAVVYCAL_API_URL": f"{savvycal_root}/v1", "SAVVYCAL_API_TOKEN": "tok",
            "RECONCILE_INTERVAL_SECONDS": "5", "MEETSYNC_REFETCH_HORIZON_SECONDS": str(HORIZON),
            "MEETSYNC_CLAIM_IDLE_MS": "200",
        })
        open_store(settings.db_path).close()  # the mirror exists before the first hint
        transport = httpx.ASGITransport(app=create_app(settings, redis=redis))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Flood(settings, redis, http, avon, savvycal, paths)


@asynccontextmanager
async def running_worker(stack: Flood, **ctx: Any) -> AsyncIterator[dict[str, Any]]:
    """A real arq worker (its crons, the applier, the lanes) until the block ends."""
    options = worker_settings(stack.settings)
    options["ctx"] = {**options["ctx"], **ctx}
    worker = create_worker(options, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        for _ in range(200):
            if "meetsync" in worker.ctx:
                break
            await asyncio.sleep(0.02)
        yield worker.ctx
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        # Jobs still running (an Avon sweep waiting, for up to a minute, on the budget the flood
        # spent) are cancelled, not waited out; arq's close() would re-raise the cancellation
        # of a cron it stopped mid-run, so they are gone before it runs.
        for job in worker.tasks.values():
            job.cancel()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        worker.tasks.clear()
        with warnings.catch_warnings():  # arq closes its pool with redis-py's close()
            warnings.simplefilter("ignore", DeprecationWarning)
            await worker.close()


async def test_a_flood_of_forged_hints_stays_in_its_lane(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
) -> None:
    """(a) Redis holds at most the Avon lane's bound, the rest is counted as collapsed; a
    SavvyCal refetch asked for after the flood is applied within seconds, and the reconcile
    cron runs at its next tick."""
    async with flood_stack(redis_server, redis, db_path) as stack, running_worker(stack):
        took = await stack.flood()
        held = await stack.avon_state()
        stats = await stack.stats()

        booked = stack.savvycal.book(start_at=stack.savvycal.start - timedelta(days=3))
        asked = booked.appointment_id  # ended days ago: no sweep lists it, only a refetch
        await request_refetch(redis, "savvycal", "default", asked)

        async def savvycal_applied() -> bool:
            return stack.fetched("savvycal", asked)

        savvycal_after = await until(savvycal_applied, 20)
        runs_before = await redis.llen(reconcile_runs_key("savvycal", "default"))

        async def swept() -> bool:
            return bool(await redis.llen(reconcile_runs_key("savvycal", "default"))
                        > runs_before)

        sweep_after = await until(swept, 15)
        print(f"\n{FLOOD} forged Avon hints (budget {AVON_PER_MINUTE}/min) answered in "
              f"{took:.1f} s; Redis entries for Avon: {held}; stats: {stats}; "
              f"SavvyCal refetch applied after {savvycal_after} s; "
              f"next SavvyCal sweep after {sweep_after} s")
        assert held <= BOUND + 10  # the lane's ids, plus a few fixed keys and counters
        accepted = stats.get("hints", 0)
        assert accepted + stats.get("hints_folded", 0) + stats.get("hints_collapsed", 0) \
            == FLOOD
        assert stats.get("hints_collapsed", 0) >= FLOOD - accepted
        assert accepted <= BOUND + AVON_PER_MINUTE + 30  # what the budget served meanwhile
        assert savvycal_after is not None and savvycal_after < 5
        assert sweep_after is not None and sweep_after < 10  # the cron fires every 5 s

        async def verified_soon() -> bool:  # the collapsed hints asked for an Avon sweep
            return not await redis.exists("meetsync:refetch:avon:default:verify")

        assert await until(verified_soon, 10) is not None


async def test_a_genuine_hint_for_a_held_appointment_goes_before_the_forged_ones(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
) -> None:
    """(b) Sent after the flood, a hint for an id the mirror holds is fetched first."""
    async with flood_stack(redis_server, redis, db_path) as stack:
        stack.avon.play(5)
        genuine = next(iter(stack.avon.appointments))
        with open_store(stack.settings.db_path) as store:
            store.apply([appointment_event(
                stack.avon.shown(genuine), event_id="evt_seen", type="appointment.created",
                occurred_at=to_micros(datetime.now(UTC) - timedelta(minutes=5)),
                account="default")])
        await stack.flood()
        response = await stack.hint(orjson.dumps(
            {"event": "appointment.updated", "object": {"id": genuine}}))
        assert response.status_code == 202
        async with running_worker(stack):
            async def applied() -> bool:  # the worker's jobs end with the block: wait for it
                return stack.fetched("avon", genuine)

            await until(applied, 30)
        fetches = [p.rsplit("/", 1)[-1] for p in stack.avon_paths if "/appointments/" in p]
        print(f"\nAvon fetches after the flood, in order: {fetches[:5]}...")
        assert fetches and fetches[0] == genuine
        assert stack.fetched("avon", genuine)


async def test_a_request_taken_by_a_worker_that_dies_mid_fetch_is_fetched_again(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
) -> None:
    """(c) The first worker dies while its fetch hangs (nothing is applied); once its lease
    runs out, the next worker fetches the appointment again and applies it."""
    hold: set[str] = set()
    async with flood_stack(redis_server, redis, db_path, hold=hold) as stack:
        stack.avon.play(3)
        target = next(iter(stack.avon.appointments))
        hold.add(target)
        assert (await stack.hint(orjson.dumps(
            {"event": "appointment.updated", "object": {"id": target}}))).status_code == 202

        async def asked() -> bool:
            return any(p.endswith("/appointments/" + target) for p in stack.avon_paths)

        async with running_worker(stack, lane_lease_seconds=1) as ctx:
            assert await until(asked, 10) is not None  # in flight, hanging
            for lane in ctx["meetsync"].lane_tasks:  # dies now, not after shutdown's patience
                lane.cancel()
        # The worker is gone (cancelled mid-fetch: it could not even say so), nothing applied.
        assert not stack.fetched("avon", target)
        hold.clear()
        async with running_worker(stack, lane_lease_seconds=1):
            async def applied() -> bool:
                return stack.fetched("avon", target)

            again = await until(applied, 10)
        print(f"\nfetched again {again} s after a new worker started")
        assert again is not None
        assert await redis.zcard("meetsync:refetch:avon:default:inflight") == 0


async def test_hints_are_counted_per_account_on_the_status_page_and_in_metrics(
    redis_server: RedisServer, redis: aioredis.Redis, db_path: Path | str,
) -> None:
    """No worker runs: the lane fills to its bound, the rest collapse; a repeat folds. The
    scrape and the page show it per configured account, never naming a forged id."""
    async with flood_stack(redis_server, redis, db_path) as stack:
        await stack.flood(BOUND + 5)
        await stack.hint(forged(0))  # waiting already
        scrape = (await stack.http.get("/metrics")).text
        for outcome, n in (("accepted", BOUND), ("folded", 1), ("collapsed", 5),
                           ("dropped", 0)):
            line = (f'meetsync_hints_total{{account="default",outcome="{outcome}",'
                    f'provider="avon"}} {float(n)}')
            assert line in scrape, line
        assert f'meetsync_refetch_lane_depth{{account="default",provider="avon"}} ' \
               f'{float(BOUND)}' in scrape
        assert 'meetsync_refetch_lane_verify_soon{account="default",provider="avon"} 1.0' \
            in scrape
        assert "forged" not in scrape
        # every one of them answered 202 and counted as a hint delivery
        assert 'meetsync_webhook_deliveries_total{account="default",code="202",outcome="hint",' \
            'provider="avon"}' in scrape
        assert not [line for line in scrape.splitlines()
                    if line.startswith("meetsync_webhook_deliveries_total")
                    and 'outcome="accepted"' in line]
        page = (await stack.http.get("/status",
                                     headers={"authorization": "Bearer read-token"})).text
        card = page.split('data-account="avon/default"', 1)[1].split("</section>", 1)[0]
        for figure, shown in (("hints_accepted", BOUND), ("hints_folded", 1),
                              ("hints_collapsed", 5), ("hints_dropped", 0),
                              ("refetches_queued", BOUND), ("verify_soon", "yes")):
            assert f'data-figure="{figure}">{shown}<' in card, figure
        stats = await stack.stats()
        assert (stats["hints"], stats["hints_folded"], stats["hints_collapsed"]) == (
            BOUND, 1, 5)


async def test_a_hint_for_an_account_without_api_credentials_is_dropped_and_counted(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path,
) -> None:
    """Nothing could fetch it: no lane, no job, counted as dropped (and said so)."""
    settings = settings_from_env({
        "MEETSYNC_DB": str(tmp_path / "mirror.db"), "REDIS_URL": redis_server.url,
        "MEETSYNC_READ_TOKEN": "read-token", "AVON_API_URL": "http://127.0.0.1:9"})
    transport = httpx.ASGITransport(app=create_app(settings, redis=redis))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for n in range(3):
            response = await http.post("/webhooks/avon", content=forged(n))
            assert response.status_code == 202
            assert response.json() == {"status": "dropped: no API credentials"}
    assert await redis.hget(STATS, "hints_dropped") == b"3"
    assert await redis.hgetall("meetsync:refetch:avon:default:counts") == {b"dropped": b"3"}
    assert sorted(await redis.keys("*")) == [b"meetsync:refetch:avon:default:counts",
                                             b"meetsync:stats"]
