"""The web process: the webhook receiver, the read API and the health probes, as one app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from meetsync.providers import LEGACY_PROVIDER, lane_bounds, providers, webhook_providers
from meetsync.queue import QueueClient, queue_client
from meetsync.settings import Settings
from meetsync.store import StoreBusy
from meetsync.webhooks.changes import ChangeFeed
from meetsync.webhooks.health import Readiness, healthz
from meetsync.webhooks.openapi import openapi_document, openapi_route
from meetsync.webhooks.operator import counted, operator_routes
from meetsync.webhooks.params import bounded_body, bounded_receive
from meetsync.webhooks.read_api import ReadOnlyMirror, read_routes
from meetsync.webhooks.receiver import MAX_BODY_BYTES, Answer, Receiver

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
    webhooks = Webhooks(receiver, counted(frozenset(hooks),
                                          frozenset(a.key for a in settings.accounts)))
    routes = [
        Route("/webhooks/{provider}", webhooks.endpoint, methods=["POST"]),
        Route("/webhooks/{provider}/{account}", webhooks.endpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readiness.endpoint, methods=["GET"]),
        *feed.routes(),
        *read_routes(settings, mirror, client),
        *operator_routes(settings, client, stream),
        openapi_route(openapi_document(hooks, providers(), LEGACY_PROVIDER)),
    ]
    app = App(webhooks, routes=routes, lifespan=lifespan,
              exception_handlers={StoreBusy: _store_busy})
    app.state.change_feed = feed  # `meetsync serve` stops its streams when asked to exit
    return app


class Webhooks:
    """``POST /webhooks/{provider}[/{account}]``: the receiver's answer, counted."""

    def __init__(self, receiver: Receiver,
                 count: Callable[[str, str | None, Answer], None]) -> None:
        self._receiver = receiver
        self._count = count

    async def endpoint(self, request: Request) -> Response:
        """As a Starlette route: what the app's routes list, and serve under a root path."""
        name = request.path_params["provider"]
        posted_to = request.path_params.get("account")
        answer = await self._receiver.answer(name, posted_to, request.headers,
                                             lambda: bounded_body(request, MAX_BODY_BYTES))
        self._count(name, posted_to, answer)
        return answer.response()

    async def serve(self, scope: Scope, receive: Receive, send: Send, name: str,
                    posted_to: str | None) -> None:
        """The same, straight on ASGI: no Request wrapper, no Response object."""
        headers = Headers(scope=scope)
        answer = await self._receiver.answer(
            name, posted_to, headers,
            lambda: bounded_receive(headers.get("content-length"), receive, MAX_BODY_BYTES))
        self._count(name, posted_to, answer)
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": answer.raw_headers()})
        await send({"type": "http.response.body", "body": answer.body})


_WEBHOOK_PATH = re.compile(r"/webhooks/([^/]+)(?:/([^/]+))?")


class App(Starlette):
    """The Starlette app, with its busiest route taken before the middleware and the router.

    A delivery is answered as the route would answer it (the same statuses, bodies, headers
    and metric; the receiver never raises, so the error middleware has nothing to catch) at a
    fraction of the cost: the middleware stack, the router's matching and the endpoint wrapper
    were about a third of the receiver's CPU (BENCHMARKS.md: ingest). Anything else, and any
    request under a root path, goes through Starlette as before."""

    def __init__(self, webhooks: Webhooks, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._webhooks = webhooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and not scope.get("root_path")):
            matched = _WEBHOOK_PATH.fullmatch(scope["path"])
            if matched is not None:
                scope["app"] = self
                await self._webhooks.serve(scope, receive, send, *matched.groups())
                return
        await super().__call__(scope, receive, send)


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
