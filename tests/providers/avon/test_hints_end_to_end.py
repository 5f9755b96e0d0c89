"""Avon end to end: unsigned hints POSTed to the real receiver app queue refetches in the
account's lane (real Redis); the worker's lane fetch runs them against the simulated Avon API
over real HTTP and writes what the API says into a real SQLite mirror; a reconcile repairs
what lost hints left. A forged hint for a made-up appointment writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from meetsync.events import to_micros
from meetsync.providers.avon import PROVIDER
from meetsync.providers.avon.mapping import appointment_event
from meetsync.providers.avon.simulator import AvonSim
from meetsync.providers.keys import settings_from_env
from meetsync.queue import STATS, LaneKeys
from meetsync.settings import Settings
from meetsync.simulator import Chaos, deliver, serve_in_background
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import StoreThread
from meetsync.worker.main import WorkerContext, connect, drain_lanes
from meetsync.worker.reconciler import Reconciler, drift, snapshot_of
from tests.providers.avon.conftest import ACCOUNT


@dataclass
class Stack:
    sim: AvonSim
    settings: Settings
    arq: ArqRedis
    ctx: dict[str, Any]
    http: httpx.AsyncClient
    receiver: httpx.ASGITransport

    @property
    def state(self) -> WorkerContext:
        return WorkerContext.of(self.ctx)

    async def run_jobs(self) -> list[str]:
        """Fetch every waiting refetch once, as the worker's lanes would, and clear it."""
        return [outcome for _, _, outcome in await drain_lanes(self.state)]

    def truth(self) -> dict[str, dict[str, Any]]:
        return {a: snapshot_of(appointment_event(
            self.sim.shown(a), event_id="truth", type="truth",
            occurred_at=to_micros(self.sim.now), account=ACCOUNT))
            for a in self.sim.appointments}

    def mismatches(self) -> dict[str, list[str]]:
        truth = self.truth()
        with open_store(self.settings.db_path, readonly=True) as store:
            held = store.snapshots(list(truth), provider="avon")
        found = {a: drift(v, held.get(a)) for a, v in truth.items()}
        return {a: fields for a, fields in found.items() if fields}


@asynccontextmanager
async def avon_stack(redis: aioredis.Redis, redis_url: str, tmp: Path,
                     seed: int = 3) -> AsyncIterator[Stack]:
    now = datetime.now(UTC).replace(microsecond=0)
    sim = AvonSim(seed, start=now - timedelta(hours=1))
    arq = ArqRedis(connection_pool=redis.connection_pool)
    with serve_in_background(sim.asgi_app(per_minute_limit=100_000)) as root:
        credentials = sim.credentials
        settings = settings_from_env({
            "MEETSYNC_DB": str(tmp / "mirror.db"), "REDIS_URL": redis_url,
            "MEETSYNC_READ_TOKEN": "read-token", "AVON_API_URL": root,
            "AVON_CLIENT_ID": credentials.client_id,
            "AVON_CLIENT_SECRET": credentials.client_secret,
            "AVON_USER_JWT": credentials.user_jwt, "AVON_ACCOUNT": credentials.account,
            "AVON_API_REQUESTS_PER_MINUTE": "100000",
        })
        store = StoreThread(lambda: open_store(settings.db_path))
        connections = connect(settings)
        state = WorkerContext(settings, arq, store, applier=None,  # type: ignore[arg-type]
                              applier_task=None,  # type: ignore[arg-type]
                              connections=connections)
        transport = httpx.ASGITransport(app=create_app(settings, redis=redis))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield Stack(sim, settings, arq, {"meetsync": state}, http, transport)
        finally:
            for connection in connections.values():
                await connection.api.aclose()
            store.close()


async def test_hints_through_the_receiver_and_arq_bring_the_mirror_to_avon(
    redis: aioredis.Redis, redis_server: Any, tmp_path: Path
) -> None:
    async with avon_stack(redis, redis_server.url, tmp_path) as stack:
        sim = stack.sim
        deliveries = sim.play(30)
        report = await deliver(deliveries, "http://test/webhooks/avon", signer=sim.signer(),
                               chaos=Chaos(drop=0.3, duplicate=0.2), seed=7,
                               transport=stack.receiver)
        assert report.accepted == report.sent and report.rejected == {}
        stats = {k.decode(): int(v) for k, v in (await redis.hgetall(STATS)).items()}
        assert stats["hints"] + stats.get("hints_folded", 0) == report.sent
        lane = LaneKeys.of("avon", ACCOUNT)
        queued = [m.decode() for m in await redis.zrange(lane.waiting, 0, -1)]
        assert len(queued) == stats["hints"]  # one request per appointment however many hints
        assert await redis.keys("arq:*") == []  # and no arq job
        ran = await drain_lanes(stack.state)
        assert ran and {(provider, outcome) for provider, _, outcome in ran} == {
            ("avon", "applied")}
        # Every appointment some hint named is now what Avon's API says; those whose hints
        # were all lost are missing, until the reconcile.
        hinted = set(queued)
        missing = stack.mismatches()
        assert set(missing) == set(sim.appointments) - hinted
        assert all(fields == ["missing"] for fields in missing.values())
        account = stack.settings.account("avon")
        assert account is not None
        api = PROVIDER.api(account, PROVIDER.budget(account))
        assert api is not None
        try:
            run = await Reconciler(api, stack.state.store, horizon=PROVIDER.horizon).run()
        finally:
            await api.aclose()
        assert run.outcome == "success" and run.drift.get("missing", 0) == len(missing)
        assert stack.mismatches() == {}


async def test_a_forged_hint_for_a_made_up_appointment_writes_nothing(
    redis: aioredis.Redis, redis_server: Any, tmp_path: Path
) -> None:
    async with avon_stack(redis, redis_server.url, tmp_path) as stack:
        forged = orjson.dumps({"event": "appointment.updated",
                               "object": {"id": "appt_madeUp0000000000", "status": "completed"}})
        response = await stack.http.post("/webhooks/avon", content=forged,
                                         headers={"content-type": "application/json"})
        assert response.status_code == 202
        assert response.json() == {"status": "fetch queued"}
        assert await stack.run_jobs() == ["unknown"]
        assert stack.sim.calls["GET /v2/appointments/{id}"] == 1  # one fetch: 404
        with open_store(stack.settings.db_path, readonly=True) as store:
            assert store.appointment("appt_madeUp0000000000", provider="avon") is None
            assert store.conn.execute("SELECT count(*) FROM appointments").fetchone()[0] == 0
