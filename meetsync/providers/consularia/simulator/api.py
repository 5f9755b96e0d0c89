"""Consularia Connect's API over the truth: the two Appointments reads, as DRF would serve them.

Serve it with ``serve_in_background(sim.asgi_app())`` at ``root``: the API base is
``f"{root}/v1"`` (the real base URL is undocumented; ``config.API_URL`` guesses one).

- Every request needs ``Authorization: Token <sim.token>`` (DRF's token scheme, our guess for
  ``ApiTokenAuth``): none → 401 ``{"detail": "Authentication credentials were not
  provided."}``, another → 401 ``{"detail": "Invalid token."}``. Each token may make
  ``rate_limit_per_minute`` requests in any 60 s of ``sim.clock``; beyond: 429 with
  ``Retry-After`` (seconds) and DRF's throttle message. Then ``sim.faults`` may delay the
  answer or replace it with a 500 or a 429.
- ``GET /v1/appointments/{id}/`` → the detail (with participants, config, updated_at);
  unknown or deleted → 404 ``{"detail": "Not found."}``.
- ``GET /v1/appointments/?page=&start_date=&end_date=&participant_unique_id=`` →
  ``{"count", "next", "previous", "results"}`` (``links=False``: ``count`` and ``results``
  only, the excerpt's shape), ``page_size`` rows a page, sorted by start then id.
  ``start_date`` / ``end_date`` bound ``start_date_time`` (inclusive; ISO-8601, a naive value
  is UTC; unreadable → 400 ``{"start_date": ["Enter a valid date/time."]}``);
  ``participant_unique_id`` keeps appointments with that participant. ``page`` past the end
  (but page 1), below 1 or not a number → 404 ``{"detail": "Invalid page."}`` (DRF).
  After each list page, ``sim.churn()`` runs (``churn_per_page``).

``sim.calls`` counts requests per route (``ROUTES``), ``sim.statuses`` per (route, status).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meetsync.simulator.ratelimit import RateLimiter

if TYPE_CHECKING:
    from meetsync.providers.consularia.simulator.model import ConsulariaModel

LIST = "GET /v1/appointments/"
DETAIL = "GET /v1/appointments/{id}/"
ROUTES = (LIST, DETAIL)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    page_size: int = 20
    rate_limit_per_minute: int = 600
    links: bool = True  # next / previous in list pages


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def _throttled(seconds: int) -> Response:
    detail = f"Request was throttled. Expected available in {seconds} seconds."
    return _json(429, {"detail": detail}, {"Retry-After": str(seconds)})


class _Api:
    def __init__(self, sim: ConsulariaModel, config: ApiConfig) -> None:
        self.sim = sim
        self.config = config
        self.limiter = RateLimiter(config.rate_limit_per_minute, sim.clock)

    async def gate(self, request: Request) -> None:
        sim = self.sim
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if not value:
            raise _Refused(_json(401, {"detail": "Authentication credentials were not provided."}))
        if scheme != "Token" or value != sim.token:
            raise _Refused(_json(401, {"detail": "Invalid token."}))
        wait = self.limiter.retry_after(value)
        if wait is not None:
            raise _Refused(_throttled(wait))
        faults = sim.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        injected = faults.draw()
        if injected == 500:
            raise _Refused(_json(500, {"detail": "A server error occurred."}))
        if injected == 429:
            raise _Refused(_throttled(faults.retry_after))

    async def detail(self, request: Request) -> Response:
        await self.gate(request)
        found = self.sim.detail(request.path_params["appointment_id"])
        if found is None:
            return _json(404, {"detail": "Not found."})
        return _json(200, found)

    async def listing(self, request: Request) -> Response:
        await self.gate(request)
        query = request.query_params
        low = _bound(query, "start_date")
        high = _bound(query, "end_date")
        who = query.get("participant_unique_id")
        rows = [
            a for a in self.sim.appointments.values()
            if (low is None or a["start_date_time"] >= low)
            and (high is None or a["start_date_time"] <= high)
            and (not who or any(p["unique_id"] == who for p in a["participants"]))
        ]
        rows.sort(key=lambda a: (a["start_date_time"], a["id"]))
        size = self.config.page_size
        pages = max(1, math.ceil(len(rows) / size))
        raw = query.get("page", "1")
        page = int(raw) if raw.isdigit() else 0
        if not 1 <= page <= pages:
            return _json(404, {"detail": "Invalid page."})
        served = rows[(page - 1) * size : page * size]
        body: dict[str, Any] = {"count": len(rows)}
        if self.config.links:
            body["next"] = _link(request, page + 1) if page < pages else None
            body["previous"] = _link(request, page - 1) if page > 1 else None
        body["results"] = [self.sim.list_item(a) for a in served]
        self.sim.churn()
        return _json(200, body)


def _bound(query: Any, name: str) -> datetime | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _Refused(_json(400, {name: ["Enter a valid date/time."]})) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _link(request: Request, page: int) -> str:
    return str(request.url.include_query_params(page=page))


def build_app(sim: ConsulariaModel, config: ApiConfig | None = None) -> Starlette:
    api = _Api(sim, config or ApiConfig())

    def counted(route: str, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            sim.calls[route] += 1
            try:
                response: Response = await handler(request)
            except _Refused as refused:
                response = refused.response
            sim.statuses[route, response.status_code] += 1
            return response

        return endpoint

    return Starlette(routes=[
        Route("/v1/appointments/", counted(LIST, api.listing), methods=["GET"]),
        Route("/v1/appointments/{appointment_id}/", counted(DETAIL, api.detail),
              methods=["GET"]),
    ])  # fmt: skip


__all__ = ["DETAIL", "LIST", "ROUTES", "ApiConfig", "build_app"]
