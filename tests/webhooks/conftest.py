"""Fixtures for the receiver: settings with both schemes configured, the app, a client
(``samples``, SavvyCal's deliveries, come from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette

from meetsync.events import Event
from meetsync.queue import EVENT_STREAM, FIELD
from meetsync.settings import Settings
from meetsync.webhooks import create_app
from tests.helpers.savvycal import savvycal_settings
from tests.providers.savvycal.samples import NATIVE_SECRET, STANDARD_SECRET


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
