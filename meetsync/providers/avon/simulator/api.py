"""Avon Health's API over the simulated truth: the token endpoint and two appointment routes.

Serve it with ``serve_in_background(sim.asgi_app())`` at ``root``: ``AVON_API_URL`` is
``root`` itself (Avon: ``https://{base_subdomain}.avonhealth.com``; paths start with ``/v2``).

- ``POST /v2/auth/token`` with a JSON body ``{"client_id", "client_secret"}`` (a
  ``grant_type`` other than ``client_credentials`` is refused) →
  ``{"access_token", "token_type": "Bearer", "expires_in"}``; bad credentials: 401
  ``{"error": "invalid_client"}``. The docs show neither side: guesses, as in the client.
- Every other route needs ``authorization: Bearer <token>`` (unknown or expired: 401), the
  user's ``x-jwt`` (wrong: 401) and, when ``require_account``, the ``account`` header (wrong:
  403, a guess).
- ``GET /v2/appointments/{id}`` → the appointment object (documented); unknown: 404
  ``{"error": "not_found"}``.
- ``GET /v2/appointments?limit=&offset=`` → ``{"object": "list", "data": [...]}`` sorted by
  start time then id (documented shape); ``limit`` default 25, at most ``max_page_size``
  (larger asks are capped, so a client must not take a short page for the last one),
  ``offset`` default 0; not numbers: 400. ``has_more`` is added only with ``has_more=True``
  (the docs show none).

Every authenticated request counts against ``per_minute_limit`` (429, ``Retry-After``
seconds); then ``sim.faults`` may delay it or answer a 500 or a 429. ``sim.calls`` counts
requests per route (``ROUTES``), ``sim.statuses`` per (route, status).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meetsync.providers.avon.simulator.model import AccessToken, token
from meetsync.simulator.ratelimit import RateLimiter

if TYPE_CHECKING:
    from meetsync.providers.avon.simulator.model import AvonModel

TOKEN = "POST /v2/auth/token"  # noqa: S105 (a route name)
GET_APPOINTMENT = "GET /v2/appointments/{id}"
LIST_APPOINTMENTS = "GET /v2/appointments"
ROUTES = (TOKEN, GET_APPOINTMENT, LIST_APPOINTMENTS)

DEFAULT_PAGE_SIZE = 25


@dataclass(frozen=True, slots=True)
class ApiConfig:
    per_minute_limit: int = 600
    token_ttl_seconds: int = 3600
    max_page_size: int = 100
    has_more: bool = False
    require_account: bool = True


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def _error(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": error}, headers)


class _Api:
    def __init__(self, sim: AvonModel, config: ApiConfig) -> None:
        self.sim = sim
        self.config = config
        self.limiter = RateLimiter(config.per_minute_limit, sim.clock)

    async def gate(self, request: Request) -> None:
        sim, credentials = self.sim, self.sim.credentials
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        issued = sim.tokens.get(value) if scheme.lower() == "bearer" else None
        if issued is None or sim.clock() >= issued.expires_at:
            raise _Refused(_error(401, "invalid_token"))
        if not hmac.compare_digest(request.headers.get("x-jwt", ""), credentials.user_jwt):
            raise _Refused(_error(401, "invalid_jwt"))
        if self.config.require_account and request.headers.get("account") != credentials.account:
            raise _Refused(_error(403, "invalid_account"))
        wait = self.limiter.retry_after(issued.client_id)
        if wait is not None:
            raise _Refused(_error(429, "rate_limited", {"Retry-After": str(wait)}))
        faults = sim.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        injected = faults.draw()
        if injected == 500:
            raise _Refused(_error(500, "internal_error"))
        if injected == 429:
            raise _Refused(_error(429, "rate_limited", {"Retry-After": str(faults.retry_after)}))

    async def token(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request")
        if not isinstance(body, dict):
            return _error(400, "invalid_request")
        credentials = self.sim.credentials
        client_id, secret = body.get("client_id"), body.get("client_secret")
        if not (isinstance(client_id, str) and isinstance(secret, str)
                and hmac.compare_digest(client_id, credentials.client_id)
                and hmac.compare_digest(secret, credentials.client_secret)):
            return _error(401, "invalid_client")
        if body.get("grant_type", "client_credentials") != "client_credentials":
            return _error(400, "unsupported_grant_type")
        access = "avtk_" + token(self.sim.api_rng, 40)
        ttl = self.config.token_ttl_seconds
        self.sim.tokens[access] = AccessToken(credentials.client_id, self.sim.clock() + ttl)
        return _json(200, {"access_token": access, "token_type": "Bearer", "expires_in": ttl})

    async def get_appointment(self, request: Request) -> Response:
        await self.gate(request)
        appointment_id = request.path_params["appointment_id"]
        if appointment_id not in self.sim.appointments:
            return _error(404, "not_found")
        return _json(200, self.sim.shown(appointment_id))

    async def list_appointments(self, request: Request) -> Response:
        await self.gate(request)
        try:
            limit = int(request.query_params.get("limit", DEFAULT_PAGE_SIZE))
            offset = int(request.query_params.get("offset", 0))
        except ValueError:
            return _error(400, "invalid_request")
        if limit < 1 or offset < 0:
            return _error(400, "invalid_request")
        limit = min(limit, self.config.max_page_size)
        ids = self.sim.listing()
        chosen = ids[offset:offset + limit]
        body: dict[str, Any] = {"object": "list",
                                "data": [self.sim.shown(a) for a in chosen]}
        if self.config.has_more:
            body["has_more"] = offset + len(chosen) < len(ids)
        return _json(200, body)


def build_app(sim: AvonModel, config: ApiConfig | None = None) -> Starlette:
    """The API as a Starlette app (see the module docstring)."""
    api = _Api(sim, config or ApiConfig())

    def counted(
        route: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            sim.calls[route] += 1
            try:
                response = await handler(request)
            except _Refused as refused:
                response = refused.response
            sim.statuses[(route, response.status_code)] += 1
            return response

        return endpoint

    return Starlette(routes=[
        Route("/v2/auth/token", counted(TOKEN, api.token), methods=["POST"]),
        Route("/v2/appointments", counted(LIST_APPOINTMENTS, api.list_appointments),
              methods=["GET"]),
        Route("/v2/appointments/{appointment_id}",
              counted(GET_APPOINTMENT, api.get_appointment), methods=["GET"]),
    ])


__all__ = ["DEFAULT_PAGE_SIZE", "GET_APPOINTMENT", "LIST_APPOINTMENTS", "ROUTES", "TOKEN",
           "ApiConfig", "build_app"]
