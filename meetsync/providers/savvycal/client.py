"""The async SavvyCal Appointments API client, and the request budget all callers share.

One ``httpx.AsyncClient`` per ``SavvyCalClient``; every HTTP attempt (retries included) first
takes a unit from the shared ``RequestBudget``, so webhook-driven refetches and reconciler sweeps
together stay under the provider's 300 requests/min per token (CONTRACT.md).

Errors::

    ApiError                  (.status: HTTP status or None, .retry_after: seconds or None)
    ├── RetryableApiError     network error, timeout, 5xx, 429 — after max_attempts
    └── PermanentApiError     401, 403, other 4xx, a body that is not the documented JSON

Messages name the method, path and status only: never the token, never a response body.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import httpx
import orjson

from meetsync.providers.savvycal.envelope import PROVIDER

Priority = Literal["refetch", "sweep"]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_TIMEOUT = httpx.Timeout(10, connect=5)
MAX_PAGE_SIZE = 100
_RANK: dict[str, int] = {"refetch": 0, "sweep": 1}


class ApiError(Exception):
    """A provider API call failed."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RetryableApiError(ApiError):
    """Worth trying again later (``retry_after`` when the provider said how long)."""


class PermanentApiError(ApiError):
    """Trying again will not help: fix the token, the account or the request."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``GET /appointments``."""

    data: list[dict[str, Any]]
    current_page: int
    page_size: int
    total_count: int
    total_pages: int


class RequestBudget:
    """At most ``per_minute`` requests in any 60 s window, shared by every caller.

    A sliding log of grant times. Waiters are served by priority (``refetch`` before ``sweep``),
    then first come first served. ``spent`` counts grants; ``throttled_seconds`` sums the waits
    callers slept (concurrent waits add up).
    """

    def __init__(
        self,
        per_minute: int = 300,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be positive")
        self.per_minute = per_minute
        self.window = window
        self.spent = 0
        self.throttled_seconds = 0.0
        self._clock = clock
        self._sleep = sleep
        self._grants: deque[float] = deque()
        self._waiting: list[tuple[int, int]] = []
        self._tickets = itertools.count()

    async def acquire(self, priority: Priority = "sweep") -> None:
        """Wait until this caller may make one request, and count it."""
        entry = (_RANK[priority], next(self._tickets))
        heapq.heappush(self._waiting, entry)
        try:
            while True:
                now = self._clock()
                while self._grants and self._grants[0] <= now - self.window:
                    self._grants.popleft()
                full = len(self._grants) >= self.per_minute
                if not full and self._waiting[0] == entry:
                    heapq.heappop(self._waiting)
                    self._grants.append(now)
                    self.spent += 1
                    return
                # Full: sleep until the oldest grant leaves the window. Not first in line:
                # yield so the waiter ahead (already runnable) takes its turn.
                wait = self._grants[0] + self.window - now if full else 0.0
                self.throttled_seconds += wait
                await self._sleep(wait)
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)


class SavvyCalClient:
    """``GET /appointments/{id}`` and ``GET /appointments``, retried and budgeted.

    Counters: ``calls`` (method calls), ``retries`` (extra attempts), ``rate_limited`` (429s).
    """

    provider = PROVIDER  # whose appointments it serves: the mirror's key with their ids

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        account_id: str | None = None,
        budget: RequestBudget,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_attempts: int = 5,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
        if account_id:
            headers["x-savvycal-account"] = account_id
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, transport=transport, timeout=timeout
        )
        self.budget = budget
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.calls = 0
        self.retries = 0
        self.rate_limited = 0

    async def __aenter__(self) -> SavvyCalClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_appointment(
        self, appointment_id: str, *, priority: Priority = "refetch"
    ) -> dict[str, Any] | None:
        """The Appointment, or None when the provider does not know it (404)."""
        body = await self._get(f"/appointments/{appointment_id}", None, priority, missing_ok=True)
        if body is None:
            return None
        return _object(body.get("data"), "data")

    async def list_appointments(
        self,
        *,
        page: int,
        page_size: int,
        filters: list[dict[str, Any]] | None = None,
        order_by: str = "start_at_utc",
        priority: Priority = "sweep",
    ) -> Page:
        """One page (``page`` from 1; ``page_size`` at most 100)."""
        query = httpx.QueryParams({"page": page, "page_size": page_size, "order_by[]": order_by})
        if filters is not None:
            query = query.set("filters", orjson.dumps(filters).decode())
        body = await self._get("/appointments", query, priority)
        assert body is not None
        meta = _object(body.get("meta"), "meta")
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise PermanentApiError("GET /appointments: data is not a list of objects")
        try:
            return Page(
                data=data,
                current_page=int(meta["current_page"]),
                page_size=int(meta["page_size"]),
                total_count=int(meta["total_count"]),
                total_pages=int(meta["total_pages"]),
            )
        except (KeyError, TypeError, ValueError):
            raise PermanentApiError("GET /appointments: malformed meta") from None

    async def iter_appointments(
        self,
        *,
        filters: list[dict[str, Any]] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        order_by: str = "start_at_utc",
        priority: Priority = "sweep",
    ) -> AsyncIterator[dict[str, Any]]:
        """Every appointment matching ``filters``, each id once.

        Pages are offsets, so rows that move while we page can be skipped or repeated
        (CONTRACT.md): repeats are dropped here; a caller needing completeness sweeps again.
        """
        seen: set[str] = set()
        page = 1
        while True:
            result = await self.list_appointments(
                page=page,
                page_size=page_size,
                filters=filters,
                order_by=order_by,
                priority=priority,
            )
            for row in result.data:
                row_id = row.get("id")
                if isinstance(row_id, str) and row_id not in seen:
                    seen.add(row_id)
                    yield row
            if page >= result.total_pages or not result.data:
                return
            page += 1

    async def _get(
        self,
        path: str,
        params: httpx.QueryParams | None,
        priority: Priority,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        self.calls += 1
        label = f"GET {path.split('?')[0]}"
        for attempt in range(1, self.max_attempts + 1):
            await self.budget.acquire(priority)
            try:
                response = await self._http.get(path, params=params)
            except httpx.TimeoutException as exc:
                error: ApiError = RetryableApiError(
                    f"{label}: timed out ({type(exc).__name__}) at {self._where()}")
            except httpx.TransportError as exc:
                error = RetryableApiError(
                    f"{label}: network error ({type(exc).__name__}) reaching {self._where()}")
            else:
                status = response.status_code
                if status == 200:
                    return _json(response, label)
                if status == 404 and missing_ok:
                    return None
                error = _status_error(label, response)
                if status == 429:
                    self.rate_limited += 1
            if isinstance(error, PermanentApiError) or attempt == self.max_attempts:
                raise error
            self.retries += 1
            await self._sleep(self._delay(attempt, error.retry_after))
        raise AssertionError("unreachable")

    def _where(self) -> str:
        """The API base URL an operator configured, without any userinfo it may carry."""
        url = self._http.base_url
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.host}{port}{url.path.rstrip('/')}"

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """The provider's ``retry-after`` exactly, else exponential backoff with full jitter."""
        if retry_after is not None:
            return retry_after
        return self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


def _status_error(label: str, response: httpx.Response) -> ApiError:
    status = response.status_code
    message = f"{label}: HTTP {status}"
    if status == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        return RetryableApiError(message, status=status, retry_after=retry_after)
    if status >= 500:
        return RetryableApiError(message, status=status)
    return PermanentApiError(message, status=status)


def _retry_after(value: str | None) -> float | None:
    """``retry-after`` in seconds (the provider's form); None if absent or not a number."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _json(response: httpx.Response, label: str) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise PermanentApiError(f"{label}: response is not JSON", status=200) from None
    return _object(body, "body")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PermanentApiError(f"unexpected response shape: {what} is not an object")
    return value


__all__ = [
    "ApiError",
    "Page",
    "PermanentApiError",
    "Priority",
    "RequestBudget",
    "RetryableApiError",
    "SavvyCalClient",
]
