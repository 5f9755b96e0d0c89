"""The web process: the webhook receiver, the read API and the health probes, as one app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetsync.providers import LEGACY_PROVIDER, lane_bounds, providers, webhook_providers
from meetsync.queue import QueueClient, queue_client
from meetsync.settings import Settings
from meetsync.store import StoreBusy
from meetsync.webhooks.changes import ChangeFeed
from meetsync.webhooks.health import Readiness, healthz
from meetsync.webhooks.openapi import openapi_document, openapi_route
from meetsync.webhooks.operator import counted, operator_routes
from meetsync.webhooks.read_api import ReadOnlyMirror, read_routes
from meetsync.webhooks.receiver import Receiver

# Fail fast: a slow Redis must turn into a 503 the sender retries, not a hung delivery.
REDIS_CONNECT_TIMEOUT_SECONDS = 1.0
REDIS_SOCKET_TIMEOUT_SECONDS = 2.0


def create_app(
    settings: Settings, *, redis: Redis | None = None, queue: QueueClient | None = None
) -> Starlette:
    """The app; builds (and on shutdown closes) its own Redis client unless one is given, and
    the event stream's unless given or the stream shares it (no ``MEETSYNC_QUEUE_URL``).
    Shutdown also closes the read API's connections to the mirror."""
    owned = redis is None
    client = redis if redis is not None else _redis_client(settings)
    owned_queue = queue is None and settings.queue_url is not None
    stream = queue if queue is not None else _queue_client(settings) if owned_queue else client
    mirror = ReadOnlyMirror(settings.db_path)
    feed = ChangeFeed(settings, mirror)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            feed.stop()
            mirror.close()
            if owned:
                await client.aclose()
            if owned_queue:
                await stream.aclose()

    hooks = webhook_providers(settings)
    async def known(provider: str, appointment_id: str) -> bool:
        return bool(await mirror.read(
            lambda store: store.appointment(appointment_id, provider=provider) is not None))

    receiver = Receiver(
        hooks, client, queue=stream, partitions=settings.queue_partitions,
        clock_skew_seconds=settings.clock_skew_seconds, lane_bounds=lane_bounds(settings),
        known=known,
    )
    readiness = Readiness(client, settings.db_path, queue=stream)
    receive = counted(receiver.endpoint, frozenset(hooks),
                      frozenset(a.key for a in settings.accounts))
    routes = [
        Route("/webhooks/{provider}", receive, methods=["POST"]),
        Route("/webhooks/{provider}/{account}", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readiness.endpoint, methods=["GET"]),
        *feed.routes(),
        *read_routes(settings, mirror, client),
        *operator_routes(settings, client, stream),
        openapi_route(openapi_document(hooks, providers(), LEGACY_PROVIDER)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={StoreBusy: _store_busy})
    app.state.change_feed = feed  # `meetsync serve` stops its streams when asked to exit
    return app


async def _store_busy(request: Request, exc: Exception) -> Response:
    """The mirror stayed locked, timed out or is unreachable (PostgreSQL restarting): retry."""
    return JSONResponse({"error": "the mirror is busy or unreachable; retry"}, status_code=503,
                        headers={"Retry-After": "1"})


def _redis_client(settings: Settings) -> Redis:
    client: Redis = Redis.from_url(
        settings.require_redis(),
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
    )
    return client


def _queue_client(settings: Settings) -> QueueClient:
    return queue_client(
        settings.require_queue(),
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
    )
