"""Zoom's API over the truth: Server-to-Server OAuth, two Meetings endpoints, the start URL.

Serve it with ``serve_in_background(sim.asgi_app())`` at ``root``: the API base is
``f"{root}/v2"`` (Zoom: ``https://api.zoom.us/v2``), the token URL ``f"{root}/oauth/token"``
(Zoom: ``https://zoom.us/oauth/token``).

- ``POST /oauth/token?grant_type=account_credentials&account_id=X`` (the parameters may also
  come form-encoded in the body) with HTTP Basic ``client_id:client_secret`` →
  ``{"access_token", "token_type": "bearer", "expires_in", "scope"}``. Bad credentials: 401
  ``{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}``; another grant:
  400 ``unsupported_grant_type``; an account_id not the app's: 400 ``invalid_request`` (a guess).
- Every ``/v2`` request needs ``Authorization: Bearer <token>``: unknown → 401
  ``{"code": 124, "message": "Invalid access token."}``, expired → 401 code 124
  ``"Access token is expired."`` (both are messages Zoom sends; clients should key on the code).
- ``GET /v2/meetings/{meetingId}`` → the meeting with a fresh ``start_url`` on every call
  (``https://zoom.us/s/{id}?zak=...``), valid ``start_url_ttl_seconds`` after issue. Unknown,
  deleted or another account's: 404 ``{"code": 3001, "message": "Meeting does not exist: {id}."}``;
  a non-numeric id: 400 code 300 (a guess).
- ``GET /v2/users?status=&page_size=&next_page_token=`` (List users): the account's users of
  that ``status`` (``active``, the default, ``inactive`` or ``pending``; else 400 code 300) in
  the order they joined, ``{"page_count", "page_number", "page_size", "total_records",
  "next_page_token", "users": [...]}`` with Zoom's user fields (``id``, ``email``,
  ``first_name``, ``last_name``, ``display_name``, ``type``, ``status``, ``role_id``,
  ``timezone``, ``verified``, ``dept``, ``created_at``, ``language``); paged as below.
- ``GET /v2/users/{userId}/meetings?type=&page_size=&next_page_token=``: ``userId`` is a user id,
  an email or ``me`` (the account owner); unknown: 404 code 1001. ``type``: ``scheduled``
  (default: every meeting not deleted: Zoom's "valid previous (unexpired), live and upcoming"),
  ``live`` (started), ``upcoming`` / ``upcoming_meetings`` (live, or not ended with some
  occurrence's start + duration after now: our reading of "all upcoming meetings including live
  meetings"); anything else 400 code 300. ``page_size`` default 30, above 300 clamped to 300
  (Zoom's documented maximum), below 1 or not a number: 400 code 300. Sorted by start time, then
  id. ``next_page_token`` is opaque, ``""`` on the last page, and expires after 15 minutes as
  Zoom's does (unknown or expired: 400 code 300, a guess); it resumes after the last meeting
  served (by start time and id), so changes between pages shift what later pages hold, as
  with any live listing. Items carry ``LIST_FIELDS`` only.
- ``GET /s/{meetingId}?zak=...`` (the start URL itself, not rate limited) → 200 if that URL was
  issued and is still valid, 410 if it expired, 401 otherwise (``sim.start_url_checks`` counts
  ``valid``/``expired``/``invalid``).

Every ``/v2`` request counts against its account's limits: ``per_second_limit`` in any 1 s
(429, ``Retry-After`` in seconds, ``X-RateLimit-Type: QPS``) and ``daily_limit`` per UTC day of
the sim's wall time (429, ``Retry-After`` the next UTC midnight as ISO 8601,
``X-RateLimit-Type: Daily-limit``). Then ``sim.faults`` may delay the answer or replace it with
a 500 or a per-second 429. ``sim.calls`` counts requests per route (``ROUTES``),
``sim.statuses`` per (route, status).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import meetsync.providers.zoom.simulator.shapes as shapes
from meetsync.providers.zoom.simulator.model import (
    AccessToken,
    Account,
    StartUrl,
    User,
    public,
)
from meetsync.simulator.ratelimit import RateLimiter

if TYPE_CHECKING:
    from meetsync.providers.zoom.simulator.model import ZoomModel

OAUTH = "POST /oauth/token"
GET_MEETING = "GET /v2/meetings/{meetingId}"
LIST_USERS = "GET /v2/users"
LIST_MEETINGS = "GET /v2/users/{userId}/meetings"
START_URL = "GET /s/{meetingId}"
ROUTES = (OAUTH, GET_MEETING, LIST_USERS, LIST_MEETINGS, START_URL)
USER_STATUSES = ("active", "inactive", "pending")

DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 300
PAGE_TOKEN_TTL = 15 * 60.0
SCOPE = "meeting:read:admin meeting:read:meeting:admin meeting:read:list_meetings:admin"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    per_second_limit: int = 30
    daily_limit: int | None = None
    token_ttl_seconds: int = 3600
    start_url_ttl_seconds: int = 7200


@dataclass(frozen=True, slots=True)
class _PageToken:
    account_id: str
    user_id: str
    kind: str
    after: tuple[str, int]
    expires_at: float


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"code": code, "message": message}, headers)


def _per_second_429(retry_after: int, limit: int) -> Response:
    headers = {
        "Retry-After": str(retry_after),
        "X-RateLimit-Category": "Light",
        "X-RateLimit-Type": "QPS",
        "X-RateLimit-Limit": str(limit),
    }
    message = "You have reached the maximum per-second rate limit for this API. Try again later."
    return _error(429, 429, message, headers)


def _daily_429(limit: int, now: datetime) -> Response:
    """Zoom's daily-limit answer: ``Retry-After`` is a date (the next UTC midnight), not seconds."""
    midnight = datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=UTC)
    headers = {
        "Retry-After": shapes.iso_seconds(midnight),
        "X-RateLimit-Category": "Light",
        "X-RateLimit-Type": "Daily-limit",
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
    }
    message = (
        f"You have exceeded the daily rate limit ({limit}) of API requests permitted for this "
        "account. You may resume these requests at GMT 00:00:00."
    )
    return _error(429, 429, message, headers)


class _Api:
    def __init__(self, sim: ZoomModel, config: ApiConfig) -> None:
        self.sim = sim
        self.config = config
        self.per_second = RateLimiter(config.per_second_limit, sim.clock, window=1.0)
        self.daily: dict[tuple[str, str], int] = {}
        self.pages: dict[str, _PageToken] = {}

    # -- gates -------------------------------------------------------------------------------

    def authorised(self, request: Request) -> Account:
        sim = self.sim
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        issued = sim.tokens.get(value) if scheme.lower() == "bearer" else None
        if issued is None:
            raise _Refused(_error(401, 124, "Invalid access token."))
        if sim.clock() >= issued.expires_at:
            raise _Refused(_error(401, 124, "Access token is expired."))
        return sim.account_by_id(issued.account_id)

    def limited(self, account: Account) -> None:
        config = self.config
        day: tuple[str, str] | None = None
        if config.daily_limit is not None:
            now = self.sim.wall_now()
            day = (account.account_id, now.date().isoformat())
            if self.daily.get(day, 0) >= config.daily_limit:
                raise _Refused(_daily_429(config.daily_limit, now))
        wait = self.per_second.retry_after(account.account_id)
        if wait is not None:
            raise _Refused(_per_second_429(wait, config.per_second_limit))
        if day is not None:
            self.daily[day] = self.daily.get(day, 0) + 1

    async def faulted(self) -> None:
        faults = self.sim.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        injected = faults.draw()
        if injected == 500:
            raise _Refused(_error(500, 500, "Internal Error."))
        if injected == 429:
            raise _Refused(_per_second_429(faults.retry_after, self.config.per_second_limit))

    async def api_gate(self, request: Request) -> Account:
        account = self.authorised(request)
        self.limited(account)
        await self.faulted()
        return account

    # -- handlers ----------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        params = dict(request.query_params)
        body = await request.body()
        if body and "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
            params.update(parse_qsl(body.decode(errors="replace")))
        client_id, client_secret = _basic(request.headers.get("authorization", ""))
        account = next(
            (a for a in self.sim.accounts if hmac.compare_digest(a.client_id, client_id)), None
        )
        if account is None or not hmac.compare_digest(account.client_secret, client_secret):
            return _json(401, {"reason": "Invalid client_id or client_secret",
                               "error": "invalid_client"})  # fmt: skip
        if params.get("grant_type") != "account_credentials":
            return _json(400, {"reason": "Unsupported grant type",
                               "error": "unsupported_grant_type"})  # fmt: skip
        if params.get("account_id") != account.account_id:
            return _json(400, {"reason": "Invalid account_id", "error": "invalid_request"})
        access = "eyJzdiI6IjAwMDAwMSIsImFsZyI6IkhTNTEyIn0." + shapes.token(self.sim.api_rng, 120)
        ttl = self.config.token_ttl_seconds
        self.sim.tokens[access] = AccessToken(account.account_id, self.sim.clock() + ttl)
        return _json(200, {"access_token": access, "token_type": "bearer", "expires_in": ttl,
                           "scope": SCOPE})  # fmt: skip

    async def get_meeting(self, request: Request) -> Response:
        account = await self.api_gate(request)
        raw = request.path_params["meeting_id"]
        if not raw.isdigit():
            return _error(400, 300, "Invalid meeting id.")
        meeting = self.sim.meetings.get(int(raw))
        if meeting is None or meeting["_account_id"] != account.account_id:
            return _error(404, 3001, f"Meeting does not exist: {raw}.")
        shown = public(meeting)
        shown["start_url"] = self.issue_start_url(meeting["id"])
        return _json(200, shown)

    def issue_start_url(self, meeting_id: int) -> str:
        sim = self.sim
        zak = "eyJ0eXAiOiJKV1QiLCJzdiI6IjAwMDAwMSJ9." + shapes.token(sim.api_rng, 86)
        url = f"https://zoom.us/s/{meeting_id}?zak={zak}"
        now = sim.clock()
        sim.start_urls[url] = StartUrl(meeting_id, now, now + self.config.start_url_ttl_seconds)
        return url

    async def list_users(self, request: Request) -> Response:
        account = await self.api_gate(request)
        status = request.query_params.get("status", "active")
        if status not in USER_STATUSES:
            return _error(400, 300, "Invalid field: status.")
        raw_size = request.query_params.get("page_size", str(DEFAULT_PAGE_SIZE))
        if not raw_size.isdigit() or int(raw_size) < 1:
            return _error(400, 300, "Invalid field: page_size.")
        page_size = min(int(raw_size), MAX_PAGE_SIZE)
        users = [u for u in account.users if u.status == status]
        offset = 0
        cursor = request.query_params.get("next_page_token", "")
        now = self.sim.clock()
        if cursor:
            page = self.pages.get(cursor)
            if page is None or page.expires_at <= now or page.kind != f"users:{status}":
                return _error(400, 300, "Invalid next_page_token.")
            offset = page.after[1]
        served = users[offset : offset + page_size]
        next_token = ""
        if offset + page_size < len(users):
            next_token = shapes.token(self.sim.api_rng, 32)
            self.pages[next_token] = _PageToken(account.account_id, "", f"users:{status}",
                                                ("", offset + page_size), now + PAGE_TOKEN_TTL)
        return _json(200, {
            "page_count": -(-len(users) // page_size),
            "page_number": offset // page_size + 1,
            "page_size": page_size,
            "total_records": len(users),
            "next_page_token": next_token,
            "users": [_user_row(u, u is account.users[0]) for u in served],
        })  # fmt: skip

    async def list_meetings(self, request: Request) -> Response:
        account = await self.api_gate(request)
        user_ref = request.path_params["user_id"]
        user = next(
            (u for u in account.users if user_ref in (u.id, u.email)),
            account.users[0] if user_ref == "me" else None,
        )
        if user is None:
            return _error(404, 1001, f"User does not exist: {user_ref}.")
        kind = request.query_params.get("type", "scheduled")
        if kind == "upcoming_meetings":
            kind = "upcoming"
        if kind not in ("scheduled", "live", "upcoming"):
            return _error(400, 300, "Invalid field: type.")
        raw_size = request.query_params.get("page_size", str(DEFAULT_PAGE_SIZE))
        if not raw_size.isdigit() or int(raw_size) < 1:
            return _error(400, 300, "Invalid field: page_size.")
        page_size = min(int(raw_size), MAX_PAGE_SIZE)
        now = self.sim.clock()
        rows = [m for m in self.sim.meetings.values()
                if m["host_id"] == user.id and self._matches(m, kind)]  # fmt: skip
        rows.sort(key=_order)
        total = len(rows)
        cursor = request.query_params.get("next_page_token", "")
        if cursor:
            page = self.pages.get(cursor)
            if (
                page is None
                or page.expires_at <= now
                or (page.user_id, page.kind) != (user.id, kind)
            ):
                return _error(400, 300, "Invalid next_page_token.")
            rows = [m for m in rows if _order(m) > page.after]
        served, rest = rows[:page_size], rows[page_size:]
        next_token = ""
        if rest:
            next_token = shapes.token(self.sim.api_rng, 32)
            self.pages[next_token] = _PageToken(
                account.account_id, user.id, kind, _order(served[-1]), now + PAGE_TOKEN_TTL
            )
        return _json(200, {
            "page_size": page_size,
            "total_records": total,
            "next_page_token": next_token,
            "meetings": [{k: m[k] for k in shapes.LIST_FIELDS} for m in served],
        })  # fmt: skip

    def _matches(self, meeting: dict[str, Any], kind: str) -> bool:
        if kind == "scheduled":
            return True
        live = bool(meeting["status"] == "started")
        if kind == "live" or live:
            return live
        if meeting["_ended"] and meeting["type"] == shapes.SCHEDULED:
            return False
        now = self.sim.wall_now()
        starts = [o["start_time"] for o in meeting.get("occurrences", [])] or [
            meeting["start_time"]
        ]
        minutes = timedelta(minutes=meeting["duration"])
        return any(shapes.parse_iso(s) + minutes > now for s in starts)

    async def start_url(self, request: Request) -> Response:
        sim = self.sim
        url = f"https://zoom.us/s/{request.path_params['meeting_id']}?{request.url.query}"
        issued = sim.start_urls.get(url)
        if issued is None or issued.meeting_id not in sim.meetings:
            sim.start_url_checks["invalid"] += 1
            return _error(401, 401, "Invalid start URL.")
        if not sim.start_url_valid(url):
            sim.start_url_checks["expired"] += 1
            return _error(410, 410, "This start URL has expired.")
        sim.start_url_checks["valid"] += 1
        return _json(200, {"meeting_id": issued.meeting_id, "started": True})


def _user_row(user: User, owner: bool) -> dict[str, Any]:
    """A user as List users shows one (the fields a sweep could use; no PMI, no phone)."""
    first, _, last = user.name.partition(" ")
    return {
        "id": user.id,
        "first_name": first,
        "last_name": last,
        "display_name": user.name,
        "email": user.email,
        "type": 2,  # licensed
        "status": user.status,
        "role_id": "0" if owner else "2",  # owner, member
        "timezone": "UTC",
        "verified": 1,
        "dept": "",
        "created_at": "2024-01-02T09:00:00Z",
        "language": "en-US",
    }


def _order(meeting: dict[str, Any]) -> tuple[str, int]:
    return (meeting["start_time"], meeting["id"])


def _basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


def build_app(sim: ZoomModel, config: ApiConfig | None = None) -> Starlette:
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

    return Starlette(
        routes=[
            Route("/oauth/token", counted(OAUTH, api.token), methods=["POST"]),
            Route("/v2/meetings/{meeting_id}", counted(GET_MEETING, api.get_meeting),
                  methods=["GET"]),
            Route("/v2/users", counted(LIST_USERS, api.list_users), methods=["GET"]),
            Route("/v2/users/{user_id}/meetings", counted(LIST_MEETINGS, api.list_meetings),
                  methods=["GET"]),
            Route("/s/{meeting_id}", counted(START_URL, api.start_url), methods=["GET"]),
        ]
    )  # fmt: skip
