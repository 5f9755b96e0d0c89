"""``GET /healthz`` (the process answers) and ``GET /readyz`` (Redis and the mirror answer)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import anyio.to_thread
import psycopg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from meetsync.queue import QueueClient
from meetsync.store.postgres import is_postgres
from meetsync.webhooks.receiver import json_response

SQLITE_TIMEOUT_SECONDS = 1.0

log = structlog.get_logger(__name__)


async def healthz(request: Request) -> Response:
    return json_response(200, {"status": "ok"})


class Readiness:
    """Ready when Redis answers PING (the event stream's too, when it has its own: every node
    of a cluster) and the SQLite mirror opens read-only and answers a query."""

    def __init__(self, redis: Redis, db_path: str, *, queue: QueueClient | None = None) -> None:
        self._redis = redis
        self._queue = queue if queue is not None and queue is not redis else None
        # Read-only URI: a readiness probe must never create or write the mirror.
        self._db_uri = db_path if is_postgres(db_path) else (
            Path(db_path).absolute().as_uri() + "?mode=ro")

    async def endpoint(self, request: Request) -> Response:
        failed: list[str] = []
        if not await _answers(self._redis):
            failed.append("redis")
        if self._queue is not None and not await _answers(self._queue):
            failed.append("queue")
        if not await anyio.to_thread.run_sync(_database_answers, self._db_uri):
            failed.append("database")
        if failed:
            log.warning("readiness_failed", failed=failed)
            return json_response(503, {"status": "unavailable", "failed": failed})
        return json_response(200, {"status": "ok"})



async def _answers(redis: QueueClient) -> bool:
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False


def _database_answers(uri: str) -> bool:
    if is_postgres(uri):
        return _postgres_answers(uri)
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT_SECONDS)) as conn:
            # Reading sqlite_master (not a bare `select 1`) proves the file is a database.
            conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error:
        return False
    return True


def _postgres_answers(url: str) -> bool:
    """The server answers, and the mirror's tables are there (a worker migrated it)."""
    try:
        with psycopg.connect(url, connect_timeout=int(SQLITE_TIMEOUT_SECONDS)) as conn:
            found = conn.execute("SELECT to_regclass('meetings')").fetchone()
    except psycopg.Error:
        return False
    return found is not None and found[0] is not None
