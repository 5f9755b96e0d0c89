"""What every provider's API client shares: errors, the request budget, retries.

``JsonApi`` is the base of each provider's client: one ``httpx.AsyncClient``; every HTTP
attempt (retries included) first takes a unit from the account's ``RequestBudget``, so
webhook-driven refetches and sweeps together stay under the provider's rate limit for that
token; 429 and 5xx are retried with the provider's ``Retry-After`` (seconds or a date) or
exponential backoff with full jitter. How a client reaches the API and retries is one
``ClientOptions`` value, the same for every provider (tests swap its transport and sleep).

Errors (of ``meetsync/errors.py``'s tree, re-exported here)::

    ApiError                  (.status: HTTP status or None, .retry_after: seconds or None)
    ├── RetryableApiError     network error, timeout, 5xx, 429 — after max_attempts
    └── PermanentApiError     401, 403, other 4xx, a body that is not the documented JSON

Messages name the method, path and status only: never a token, never a response body.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal, Self

import httpx
import orjson

from meetsync.errors import ApiError, PermanentApiError, RetryableApiError
from meetsync.metrics import api_attempt

Priority = Literal["refetch", "sweep"]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_TIMEOUT = httpx.Timeout(10, connect=5)
_RANK: dict[str, int] = {"refetch": 0, "sweep": 1}


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

    def available(self) -> int:
        """Requests a caller could make now without waiting (a metrics thread reads it: the
        log is copied first)."""
        floor = self._clock() - self.window
        return max(0, self.per_minute - sum(1 for at in tuple(self._grants) if at > floor))


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a client reaches its API and retries: ``max_attempts`` HTTP attempts per call,
    waits drawn from ``rng`` between 0 and ``backoff_base * 2**(attempt-1)`` (at most
    ``backoff_cap`` seconds) and slept with ``sleep``. Tests pass their own transport, sleep
    and random source; production uses the defaults."""

    transport: httpx.AsyncBaseTransport | None = None
    # httpx.Timeout is unhashable, which dataclasses refuse as a plain default
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    max_attempts: int = 5
    sleep: Sleep = asyncio.sleep
    rng: random.Random | None = None
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


DEFAULT_OPTIONS = ClientOptions()


class JsonApi:
    """A JSON-over-HTTP API: budgeted, retried GETs. Providers subclass it.

    Counters: ``calls`` (method calls), ``retries`` (extra attempts), ``rate_limited`` (429s).
    A subclass that authenticates per request overrides ``auth_headers``.
    """

    rotation = 0  # ProviderApi: complete listings need no rotation

    def __init__(
        self,
        base_url: str,
        *,
        budget: RequestBudget,
        headers: Mapping[str, str] | None = None,
        options: ClientOptions = DEFAULT_OPTIONS,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), transport=options.transport, timeout=options.timeout,
            headers={"accept": "application/json", **(headers or {})},
        )
        self.budget = budget
        self.options = options
        self._sleep = options.sleep
        self._rng = options.rng or random.Random()
        self.calls = 0
        self.retries = 0
        self.rate_limited = 0

    async def __aenter__(self) -> Self:
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

    async def auth_headers(self) -> Mapping[str, str]:
        """Headers that authenticate one attempt (fixed ones go to ``__init__``)."""
        return {}

    async def reauthenticate(self) -> bool:
        """Drop cached credentials after a 401; True when a retry may then succeed."""
        return False

    async def get_json(
        self,
        path: str,
        params: httpx.QueryParams | None,
        priority: Priority,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """The JSON object at ``path``; None for a 404 when ``missing_ok``.

        A 401 is retried once if ``reauthenticate`` says fresh credentials may help (an
        expired OAuth token); other statuses as the module says.
        """
        self.calls += 1
        label = f"GET {path.split('?')[0]}"
        reauthenticated = False
        for attempt in range(1, self.options.max_attempts + 1):
            await self.budget.acquire(priority)
            try:
                response = await self._http.get(
                    path, params=params, headers=await self.auth_headers())
            except httpx.TimeoutException as exc:
                api_attempt(self, "timeout")
                error: ApiError = RetryableApiError(
                    f"{label}: timed out ({type(exc).__name__}) at {self._where()}")
            except httpx.TransportError as exc:
                api_attempt(self, "network_error")
                error = RetryableApiError(
                    f"{label}: network error ({type(exc).__name__}) reaching {self._where()}")
            else:
                status = response.status_code
                api_attempt(self, str(status))
                if status == 200:
                    return json_body(response, label)
                if status == 404 and missing_ok:
                    return None
                if status == 401 and not reauthenticated and await self.reauthenticate():
                    reauthenticated = True
                    continue
                error = _status_error(label, response)
                if status == 429:
                    self.rate_limited += 1
            if isinstance(error, PermanentApiError) or attempt == self.options.max_attempts:
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
        cap, base = self.options.backoff_cap, self.options.backoff_base
        return self._rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))



class TokenApi(JsonApi):
    """A ``JsonApi`` that authenticates with a bearer token it fetches itself (an OAuth client
    credentials grant): one fetch at a time, budgeted, the token reused until
    ``token_margin`` seconds before it expires (``default_token_seconds`` when the answer
    gives no ``expires_in``) and dropped on a 401. Subclasses send the token request."""

    token_label = "POST token"  # noqa: S105 (a label)
    token_margin = 60
    default_token_seconds = 3600

    def __init__(
        self,
        base_url: str,
        *,
        budget: RequestBudget,
        headers: Mapping[str, str] | None = None,
        options: ClientOptions = DEFAULT_OPTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(base_url, budget=budget, headers=headers, options=options)
        self.tokens_fetched = 0
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    async def request_token(self) -> httpx.Response:
        """Send the token request (the subclass knows its URL and grant)."""
        raise NotImplementedError

    def token_in(self, body: dict[str, Any]) -> object:
        """The token in the token response's body."""
        return body.get("access_token")

    async def auth_headers(self) -> Mapping[str, str]:
        return {"authorization": f"Bearer {await self.access_token()}"}

    async def reauthenticate(self) -> bool:
        self._token = None
        return True

    async def access_token(self) -> str:
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_until:
                return self._token
            self._token = None
            await self.budget.acquire("refetch")
            asked = self._clock()
            label = self.token_label
            try:
                response = await self.request_token()
            except httpx.TimeoutException as exc:
                raise RetryableApiError(f"{label}: timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise RetryableApiError(
                    f"{label}: network error ({type(exc).__name__})") from None
            if response.status_code != 200:
                raise _status_error(label, response)
            body = json_body(response, label)
            token = self.token_in(body)
            if not isinstance(token, str) or not token:
                raise PermanentApiError(f"{label}: response has no access_token")
            lifetime = body.get("expires_in")
            if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
                lifetime = self.default_token_seconds
            self.tokens_fetched += 1
            self._token = token
            self._token_until = asked + lifetime - min(self.token_margin, lifetime // 2)
            return token


def _status_error(label: str, response: httpx.Response) -> ApiError:
    status = response.status_code
    message = f"{label}: HTTP {status}"
    if status == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        return RetryableApiError(message, status=status, retry_after=retry_after)
    if status >= 500:
        return RetryableApiError(message, status=status)
    return PermanentApiError(message, status=status)


def _retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """``retry-after`` in seconds: a number of seconds, an HTTP date or an ISO-8601 date-time
    (Zoom's daily limits); None if absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        moment = _date(value.strip())
        if moment is None:
            return None
        return max(0.0, moment.timestamp() - now())
    return seconds if seconds >= 0 else None


def _date(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def json_body(response: httpx.Response, label: str) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise PermanentApiError(f"{label}: response is not JSON", status=200) from None
    return json_object(body, "body")


def json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PermanentApiError(f"unexpected response shape: {what} is not an object")
    return value




__all__ = [
    "DEFAULT_OPTIONS",
    "ApiError",
    "ClientOptions",
    "JsonApi",
    "PermanentApiError",
    "Priority",
    "RequestBudget",
    "RetryableApiError",
    "TokenApi",
    "json_object",
]
