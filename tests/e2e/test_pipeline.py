"""End to end: signed HTTP deliveries -> Redis stream -> applier -> SQLite -> read API."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.providers.savvycal.simulator.signing import sign
from meetsync.store import open_store
from meetsync.webhooks import create_app
from meetsync.worker.applier import Applier, StoreThread
from tests.helpers.savvycal import savvycal_settings

NATIVE = "e2e-native-secret"
STANDARD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "e2e-read-token"


def truth_of(appointment: dict[str, Any]) -> dict[str, Any] | None:
    """What the read API must serve: the provider's meeting, credentials dead 24 h after end
    and never served for a canceled appointment."""
    meeting = appointment["meeting"]
    if meeting is None:
        return None
    keys = ("id", "status", "conferencing_provider", "external_meeting_id", "join_url",
            "host_url", "password", "error_message")
    expected = {k: meeting[k] for k in keys}
    ended = datetime.fromisoformat(appointment["end_at"]["utc"].replace("Z", "+00:00"))
    if ended + timedelta(hours=24) <= datetime.now(UTC) or appointment["status"] == "canceled":
        expected["host_url"] = expected["password"] = None
    return expected


async def test_chaotic_signed_deliveries_end_as_the_providers_truth(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    db = tmp_path / "mirror.db"
    settings = savvycal_settings(db_path=str(db), savvycal_webhook_secrets=(NATIVE,),
                        standard_webhook_secrets=(STANDARD,), read_token=TOKEN)
    sim = SavvyCalSim(seed=3)
    deliveries = sim.play(40)
    rng = random.Random(3)
    sent = deliveries + rng.sample(deliveries, len(deliveries) // 4)  # duplicates
    rng.shuffle(sent)  # any order

    app = create_app(settings, redis=redis)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for n, delivery in enumerate(sent):
            scheme = ("native", "standard", "svix")[n % 3]
            secret = NATIVE if scheme == "native" else STANDARD
            headers = sign(scheme, delivery.body, secret, event_id=delivery.event_id,  # type: ignore[arg-type]
                           webhook_id="wh_e2e")
            response = await client.post("/webhooks/savvycal", content=delivery.body,
                                         headers={**headers, "content-type": "application/json"})
            assert response.status_code == 202, response.text

        applier = Applier(redis, StoreThread(lambda: open_store(db)), batch_size=16)
        drained = await applier.drain()
        applier.store.close()
        assert drained.result.applied == len(deliveries)
        assert drained.result.duplicates == len(sent) - len(deliveries)

        auth = {"authorization": f"Bearer {TOKEN}"}
        replaced = 0
        for appointment_id, appointment in sim.appointments.items():
            expected = truth_of(appointment)
            response = await client.get(f"/v1/appointments/{appointment_id}/meeting",
                                        headers=auth)
            if expected is None:
                assert response.status_code == 404
                continue
            assert response.status_code == 200
            body = response.json()
            assert {k: body[k] for k in expected} == expected
            assert body["appointment_id"] == appointment_id and body["replaced_by"] is None
            with open_store(db) as store:
                chain = store.conn.execute(
                    "SELECT id, replaced_by FROM meetings WHERE appointment_id = ? "
                    "AND replaced_by IS NOT NULL", (appointment_id,)).fetchall()
            for old_id, _ in chain:
                old = (await client.get(f"/v1/meetings/{old_id}", headers=auth)).json()
                assert old["replaced_by"] is not None
                assert old["host_url"] is None and old["password"] is None
                replaced += 1
        assert replaced > 0, "the workload should include replacements"


async def test_read_api_requires_the_token_and_answers_404_for_unknown(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    db = tmp_path / "mirror.db"
    open_store(db).close()
    settings = savvycal_settings(db_path=str(db), savvycal_webhook_secrets=(NATIVE,),
                                 read_token=TOKEN)
    transport = httpx.ASGITransport(app=create_app(settings, redis=redis))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/v1/appointments/appt_000000000000/meeting", "/v1/meetings/amtg_x"):
            assert (await client.get(path)).status_code == 401
            wrong = {"authorization": "Bearer not-the-token"}
            assert (await client.get(path, headers=wrong)).status_code == 401
            basic = {"authorization": f"Basic {TOKEN}"}
            assert (await client.get(path, headers=basic)).status_code == 401
            ok = {"authorization": f"Bearer {TOKEN}"}
            response = await client.get(path, headers=ok)
            assert response.status_code == 404
            assert response.json() == {"error": "not found"}


async def test_no_read_token_configured_answers_nothing(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    settings = savvycal_settings(db_path=str(tmp_path / "m.db"), savvycal_webhook_secrets=(NATIVE,))
    transport = httpx.ASGITransport(app=create_app(settings, redis=redis))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/v1/meetings/amtg_x", headers={"authorization": "Bearer "})
        assert response.status_code == 401
