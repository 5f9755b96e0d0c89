"""/healthz answers while the process lives; /readyz only while Redis (the queue's too) and the
mirror answer."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest
import redis.asyncio as aioredis

from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.settings import Settings
from meetsync.store import open_store
from meetsync.webhooks import create_app


@pytest.fixture
def database(db_path: Path) -> Path:
    """A real mirror at the configured path (a SQLite file, or a PostgreSQL database)."""
    open_store(db_path).close()
    return db_path


@pytest.fixture
def not_a_database(db_path: Path) -> Path:
    db_path.write_bytes(b"definitely not sqlite" * 100)
    return db_path


async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_with_redis_and_the_database(
    client: httpx.AsyncClient, database: Path
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.sqlite_only
async def test_readyz_fails_without_the_database_file_and_does_not_create_it(
    client: httpx.AsyncClient, db_path: Path
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["database"]}
    assert not await anyio.Path(db_path).exists()


@pytest.mark.sqlite_only
async def test_readyz_fails_when_the_file_is_not_a_database(
    client: httpx.AsyncClient, not_a_database: Path
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


async def test_readyz_fails_when_redis_is_down(
    tmp_path: Path, settings: Settings, database: Path
) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=False).start()
    redis = aioredis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    try:
        app = create_app(settings, redis=redis)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/readyz")).status_code == 200
            server.stop()
            response = await client.get("/readyz")
            alive = await client.get("/healthz")
    finally:
        server.stop()
        await redis.aclose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["redis"]}
    assert alive.status_code == 200


async def test_readyz_fails_while_postgresql_is_unreachable_or_unmigrated(
    settings: Settings, redis: aioredis.Redis, pg_server: object
) -> None:
    from meetsync.dev.pg_server import PostgresServer

    assert isinstance(pg_server, PostgresServer)
    for db in (f"postgresql://postgres@127.0.0.1:{free_port()}/mirror",
               pg_server.create_database(f"never_migrated_{uuid.uuid4().hex}")):
        app = create_app(replace(settings, db_path=db), redis=redis)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["failed"] == ["database"]


async def test_readyz_fails_when_the_queues_own_redis_is_down(
    settings: Settings, database: Path, redis: aioredis.Redis
) -> None:
    """With MEETSYNC_QUEUE_URL the receiver cannot queue without that Redis: not ready."""
    gone = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    transport = httpx.ASGITransport(app=create_app(settings, redis=redis, queue=gone))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/readyz")
    await gone.aclose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failed": ["queue"]}
