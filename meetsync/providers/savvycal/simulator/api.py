"""The simulated SavvyCal API: the two Appointments endpoints over the truth (``model``).

- ``GET /v1/appointments/{id}`` → ``{"data": Appointment}``; 404 with the contract's error shape.
- ``GET /v1/appointments?page=&page_size=&filters=&order_by[]=`` → ``{"data": [...], "meta"}``.
  ``page`` ≥ 1 (default 1); ``page_size`` 1..100 (default 20; outside that range: 400).
  ``total_pages`` is ``ceil(total_count / page_size)`` (0 when nothing matches); a page past the
  end is empty. ``order_by[]``: ``start_at_utc`` (default) or ``updated_at``, ties by id.
  ``filters`` is a JSON list of ``{"field", "op", "value"}``, all of which must hold:

  - ``period == upcoming`` (not yet ended: ``end_at`` after the simulated now) or ``past``;
  - ``start_at`` / ``end_at`` / ``updated_at`` with ``>=``, ``>``, ``<=``, ``<`` and an ISO-8601
    value (the time-window filter: e.g. ``start_at >= A`` and ``start_at < B``);
  - ``status == scheduled|canceled``.

  Anything else is a 400.
- Every request needs ``Authorization: Bearer <token>`` (401); when the simulator has an
  ``account_id``, also ``X-SavvyCal-Account`` naming it (403). Each token may make
  ``rate_limit_per_minute`` requests in any 60 s window; beyond that: 429 with ``retry-after``.
  Then ``sim.faults`` may delay the answer or replace it with a 500 or 429.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meetsync.providers.savvycal.simulator.model import public
from meetsync.simulator.clock import Clock
from meetsync.simulator.ratelimit import RateLimiter

if TYPE_CHECKING:
    from meetsync.providers.savvycal.simulator.model import SavvyCalModel

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_ORDERS = {"start_at_utc": "start_at", "updated_at": "updated_at"}


class BadRequest(Exception):
    """A malformed query: answered 400 with the message as ``detail``."""


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"errors": [{"detail": detail, "status": str(status)}]})
    return Response(body, status, headers=headers, media_type="application/json")


def ok(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), 200, media_type="application/json")


def _epoch(value: Any) -> float:
    """Seconds since the epoch of an ISO-8601 instant (offset required)."""
    if not isinstance(value, str):
        raise BadRequest("filter value must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"invalid timestamp {value!r}") from None
    if moment.tzinfo is None:
        raise BadRequest(f"timestamp {value!r} needs an offset")
    return moment.timestamp()


def _instant(appointment: dict[str, Any], field: str) -> float:
    value = appointment[field]["utc"] if field in ("start_at", "end_at") else appointment[field]
    return _epoch(value)


def _predicate(spec: Any, now: float) -> Callable[[dict[str, Any]], bool]:
    if not isinstance(spec, dict) or set(spec) != {"field", "op", "value"}:
        raise BadRequest("each filter is {field, op, value}")
    field, op, value = spec["field"], spec["op"], spec["value"]
    if field == "period" and op == "==" and value in ("upcoming", "past"):
        upcoming = value == "upcoming"
        return lambda a: (_instant(a, "end_at") > now) == upcoming
    if field == "status" and op == "==" and value in ("scheduled", "canceled"):
        return lambda a: bool(a["status"] == value)
    if field in ("start_at", "end_at", "updated_at") and op in _OPS:
        bound, compare = _epoch(value), _OPS[op]
        return lambda a: compare(_instant(a, field), bound)
    raise BadRequest(f"unsupported filter {field} {op} {value!r}")


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def list_page(sim: SavvyCalModel, request: Request) -> dict[str, Any]:
    page = _int_param(request, "page", 1, 1, 1_000_000)
    page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    try:
        specs = orjson.loads(request.query_params.get("filters") or "[]")
    except orjson.JSONDecodeError:
        raise BadRequest("filters must be a JSON list") from None
    if not isinstance(specs, list):
        raise BadRequest("filters must be a JSON list")
    now = sim.now.timestamp()
    predicates = [_predicate(spec, now) for spec in specs]
    order = request.query_params.getlist("order_by[]") or ["start_at_utc"]
    if len(order) != 1 or order[0] not in _ORDERS:
        raise BadRequest("order_by[] must be start_at_utc or updated_at")
    key = _ORDERS[order[0]]
    rows = [a for a in sim.appointments.values() if all(p(a) for p in predicates)]
    rows.sort(key=lambda a: (_instant(a, key), a["id"]))
    begin = (page - 1) * page_size
    return {
        "data": [public(a) for a in rows[begin : begin + page_size]],
        "meta": {
            "current_page": page,
            "page_size": page_size,
            "total_count": len(rows),
            "total_pages": math.ceil(len(rows) / page_size),
        },
    }


def build_app(
    sim: SavvyCalModel, *, rate_limit_per_minute: int = 300, clock: Clock | None = None
) -> Starlette:
    limiter = RateLimiter(rate_limit_per_minute, clock or time.monotonic)

    async def gate(request: Request) -> Response | None:
        """Auth, the rate limit and injected faults; None when the request may be served."""
        sim.requests_served += 1
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {sim.token}":
            return error(401, "Unauthorized")
        if sim.account_id and request.headers.get("x-savvycal-account") != sim.account_id:
            return error(403, "Forbidden: unknown account")
        wait = limiter.retry_after(sim.token)
        if wait is not None:
            return error(429, "Too many requests", {"retry-after": str(wait)})
        faults = sim.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        injected = faults.draw()
        if injected == 500:
            return error(500, "Internal server error")
        if injected == 429:
            return error(429, "Too many requests", {"retry-after": str(faults.retry_after)})
        return None

    async def get_one(request: Request) -> Response:
        refused = await gate(request)
        if refused is not None:
            return refused
        appointment = sim.appointments.get(request.path_params["appointment_id"])
        if appointment is None:
            return error(404, "Not found")
        return ok({"data": public(appointment)})

    async def get_list(request: Request) -> Response:
        refused = await gate(request)
        if refused is not None:
            return refused
        try:
            return ok(list_page(sim, request))
        except BadRequest as exc:
            return error(400, str(exc))

    return Starlette(
        routes=[
            Route("/v1/appointments", get_list, methods=["GET"]),
            Route("/v1/appointments/{appointment_id}", get_one, methods=["GET"]),
        ]
    )
