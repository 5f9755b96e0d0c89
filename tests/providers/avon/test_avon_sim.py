"""The Avon simulator: deterministic under its seed, its deliveries are unsigned hints in every
documented envelope version, and they ride ``deliver`` with drops, duplicates and reordering."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meetsync.providers import EnvelopeError, Hint, SignatureError
from meetsync.providers.avon import PROVIDER
from meetsync.providers.avon.mapping import APPOINTMENT_ID
from meetsync.providers.avon.simulator import AvonSim
from meetsync.providers.avon.simulator.api import TOKEN
from meetsync.settings import Account
from meetsync.simulator import Chaos, deliver, serve_in_background

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


def bodies(sim: AvonSim, n: int) -> list[bytes]:
    return [d.body for d in sim.play(n)]


async def test_same_seed_same_deliveries_whatever_the_api_serves() -> None:
    first = AvonSim(11, start=NOW)
    second = AvonSim(11, start=NOW)
    transport = httpx.ASGITransport(app=second.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://avon") as http:
        c = second.credentials
        for _ in range(3):  # tokens draw from the API's own random source
            answer = await http.post("/v2/auth/token", json={
                "client_id": c.client_id, "client_secret": c.client_secret})
            assert answer.status_code == 200
    assert second.calls[TOKEN] == 3
    assert bodies(first, 60) == bodies(second, 60)
    assert first.credentials == second.credentials
    assert bodies(AvonSim(12, start=NOW), 60) != bodies(AvonSim(11, start=NOW), 60)


def test_deliveries_are_hints_in_every_envelope_version() -> None:
    sim = AvonSim(2, start=NOW)
    deliveries = sim.play(80)
    hooks = PROVIDER.webhooks([Account("avon", "default", {})])
    shapes: Counter[str] = Counter()
    for delivery in deliveries:
        envelope = orjson.loads(delivery.body)
        created = envelope.get("created_at")
        shapes["wbhk" if "id" in envelope else "ms" if isinstance(created, int) else "iso"] += 1
        assert sim.signer()(delivery) == {"content-type": "application/json"}
        parsed = hooks.parse(delivery.body, hooks.verify(delivery.body, {}))
        assert parsed == Hint(delivery.appointment_id, "default", delivery.event)
        assert APPOINTMENT_ID.fullmatch(delivery.appointment_id)
    assert set(shapes) == {"wbhk", "ms", "iso"}
    events = {d.event for d in deliveries}
    assert {"appointment.created", "appointment.updated", "appointment.completed"} <= events
    assert events & {"appointment.started", "appointment.in_progress"}
    statuses = {sim.status(a) for a in sim.appointments}
    assert {"scheduled", "completed"} <= statuses
    interactions = {v["interaction_type"] for v in sim.appointments.values()}
    assert interactions == {"video_call", "in_person"}


async def test_deliver_with_chaos_to_a_receiver() -> None:
    sim = AvonSim(9, start=NOW)
    deliveries = sim.play(60)
    hooks = PROVIDER.webhooks([Account("avon", "east", {}), Account("avon", "west", {})])
    hinted: list[Hint] = []

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            account = hooks.verify(body, request.headers, request.path_params.get("account"))
        except SignatureError as exc:
            return JSONResponse({"error": str(exc)}, 401)
        try:
            parsed = hooks.parse(body, account)
        except EnvelopeError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        if isinstance(parsed, Hint):
            hinted.append(parsed)
        return JSONResponse({"status": "fetch queued"}, 202)

    app = Starlette(routes=[Route("/webhooks/avon", receive, methods=["POST"]),
                            Route("/webhooks/avon/{account}", receive, methods=["POST"])])
    chaos = Chaos(drop=0.1, duplicate=0.2, reorder=True)
    with serve_in_background(app) as root:
        refused = await deliver(deliveries, f"{root}/webhooks/avon", signer=sim.signer(),
                                chaos=chaos, seed=1)
        assert not hinted  # several accounts: a delivery must name its account in the path
        report = await deliver(deliveries, f"{root}/webhooks/avon/west", signer=sim.signer(),
                               chaos=chaos, seed=1)
    assert refused.rejected == Counter({401: refused.sent})
    assert report.accepted == report.sent == report.total - report.dropped + report.duplicated
    assert len(hinted) == report.sent
    assert {h.account for h in hinted} == {"west"}
    delivered = {d.event_id for d in deliveries} - set(report.dropped_event_ids)
    expected = {d.appointment_id for d in deliveries if d.event_id in delivered}
    assert {h.appointment_id for h in hinted} == expected
