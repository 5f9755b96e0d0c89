"""Fixtures for the receiver: settings with both schemes configured, the app, a client, samples."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from svix.webhooks import Webhook

from meetsync.events import Event
from meetsync.queue import EVENT_STREAM, FIELD
from meetsync.settings import Settings
from meetsync.webhooks import create_app
from tests.helpers.savvycal import savvycal_settings

NATIVE_SECRET = "savvycal-native-secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOST_URL = "https://book.acme.com/p/appointments/appt_a1b2c3d4e5f6/host?token=SECRET-TOKEN"


class Samples:
    """SavvyCal deliveries as the contract describes them, and their signatures."""

    native_secret = NATIVE_SECRET
    standard_secret = STANDARD_SECRET
    host_url = HOST_URL

    def meeting(self, **overrides: Any) -> dict[str, Any]:
        return {
            "conferencing_provider": "zoom_admin",
            "error_message": None,
            "external_meeting_id": "82912345678",
            "host_url": HOST_URL,
            "id": "amtg_a1b2c3d4e5f6",
            "join_url": "https://zoom.us/j/82912345678",
            "object": "appointment_meeting",
            "password": "abc123",
            "status": "created",
            **overrides,
        }

    def appointment(self, **overrides: Any) -> dict[str, Any]:
        return {
            "id": "appt_a1b2c3d4e5f6",
            "object": "appointment",
            "status": "scheduled",
            "start_at": {
                "object": "zoned_date_time",
                "utc": "2025-03-01T15:00:00Z",
                "local": "2025-03-01T10:00:00-05:00",
                "unix_ts": 1740841200,
                "time_zone": "America/New_York",
            },
            "end_at": {
                "object": "zoned_date_time",
                "utc": "2025-03-01T15:30:00Z",
                "local": "2025-03-01T10:30:00",
                "unix_ts": 1740843000,
                "time_zone": "America/New_York",
            },
            "created_at": "2025-02-20T12:00:00Z",
            "provider": {"id": "prov_a1b2c3d4e5f6"},
            "meeting": self.meeting(),
            "some_future_field": {"ignored": True},
            **overrides,
        }

    def envelope(
        self,
        type: str = "appointment.meeting.updated",
        *,
        event_id: str = "evt_0001",
        obj: Any = None,
        created_at: Any = "2025-03-01T14:00:00Z",
        **data_extra: Any,
    ) -> dict[str, Any]:
        return {
            "id": event_id,
            "account_id": "acct_a1b2c3d4e5f6",
            "version": "1.0",
            "created_at": created_at,
            "data": {
                "type": type,
                "object": self.appointment() if obj is None else obj,
                **data_extra,
            },
        }

    def body(self, **kwargs: Any) -> bytes:
        return orjson.dumps(self.envelope(**kwargs))

    def native_headers(self, payload: bytes, secret: str = NATIVE_SECRET) -> dict[str, str]:
        digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest().upper()
        return {"x-savvycal-signature": f"sha256={digest}", "x-savvycal-webhook-id": "wh_0001"}

    def standard_headers(
        self,
        payload: bytes,
        secret: str = STANDARD_SECRET,
        *,
        prefix: str = "webhook-",
        msg_id: str = "msg_0001",
    ) -> dict[str, str]:
        sent_at = int(time.time())
        moment = datetime.fromtimestamp(sent_at, UTC)
        return {
            f"{prefix}id": msg_id,
            f"{prefix}timestamp": str(sent_at),
            f"{prefix}signature": Webhook(secret).sign(msg_id, moment, payload.decode()),
        }


@pytest.fixture
def samples() -> Samples:
    return Samples()


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return savvycal_settings(
        db_path=str(db_path),
        savvycal_webhook_secrets=(NATIVE_SECRET,),
        standard_webhook_secrets=(STANDARD_SECRET,),
    )


@pytest.fixture
def app(settings: Settings, redis: aioredis.Redis) -> Starlette:
    return create_app(settings, redis=redis)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def queued(redis: aioredis.Redis) -> Callable[[], Awaitable[list[Event]]]:
    """Reads back what the receiver put on the event stream, oldest first."""

    async def read() -> list[Event]:
        entries = await redis.xrange(EVENT_STREAM)
        return [Event.from_json(fields[FIELD]) for _, fields in entries]

    return read
