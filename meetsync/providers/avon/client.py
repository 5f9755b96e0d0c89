"""One Avon Health account's API client: the bearer token, one appointment, the listing.

Auth (docs.avonhealth.com "Authentication", "SDKs")::

    POST {AVON_API_URL}/v2/auth/token    JSON {"grant_type": "client_credentials",
                                               "client_id": ..., "client_secret": ...}
    → {"access_token": "...", "expires_in": 3600, ...}
    every call:  authorization: Bearer <token>,  x-jwt: <AVON_USER_JWT>,  account: <AVON_ACCOUNT>

The docs name the endpoint and the pair it takes, not the request's encoding or the answer's
fields: a JSON body and an OAuth2-style answer are guesses (``token`` is accepted for
``access_token``; without ``expires_in`` the token is kept ``DEFAULT_TOKEN_SECONDS``). The
token is cached until ``TOKEN_MARGIN_SECONDS`` before it expires (one request at a time
fetches it), dropped on a 401 (``reauthenticate``: the request is retried once with a fresh
one; a second 401 means the user JWT is bad or expired: a permanent error), and its request
takes a unit of the account's budget like any other. ``x-jwt`` is sent to the API only, never
to the token endpoint. No token, secret or JWT is ever logged or put in an error message.

Calls::

    fetch   GET /v2/appointments/{id}     the appointment (or {"data": appointment}, a
                                          guess); 404 → None
    sweep   GET /v2/appointments?limit=100&offset=N

The listing's shape is documented (``{"object": "list", "data": [appointment...]}``, full
appointments: pages are ``complete``); its paging and filters are not. Our guesses, built to
fail safe: we page by ``limit`` and ``offset`` and follow ``has_more`` when the answer has it;
without it we ask for the next offset until a page comes back empty (so a server capping
pages below our ``limit`` is still read to the end). A page that lists nothing new (a server
ignoring ``offset`` serves page 1 again) stops the sweep with an error, as does
``MAX_PAGES``. No filter is sent (an unknown one might be refused): the window is applied to
the rows (``Window.admits``), so a sweep reads every appointment the account lists. Offset pages can
shift while we page; Avon gives no total to notice it by: a row missed that way is either held
by the mirror (the reconciler fetches held appointments the listing missed) or new (the next
sweep, or its webhook, brings it).

Errors are ``meetsync.providers.http``'s: ``RetryableApiError`` / ``PermanentApiError``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx

from meetsync.events import Event, to_micros
from meetsync.providers import EnvelopeError, SweepPage, Unchanged, Window
from meetsync.providers.avon.mapping import APPOINTMENT_ID, PROVIDER, appointment_event
from meetsync.providers.http import (
    DEFAULT_OPTIONS,
    ClientOptions,
    PermanentApiError,
    Priority,
    RequestBudget,
    TokenApi,
)

TOKEN_PATH = "/v2/auth/token"  # noqa: S105 (a path)
APPOINTMENTS_PATH = "/v2/appointments"
PAGE_SIZE = 100
MAX_PAGES = 200
TOKEN_MARGIN_SECONDS = 60
DEFAULT_TOKEN_SECONDS = 3600

_TOKEN_LABEL = "POST /v2/auth/token"  # noqa: S105 (a label)
_GET_ONE = "GET /v2/appointments/{id}"


class AvonClient(TokenApi):
    """``ProviderApi`` for one Avon Health account (see the module docstring)."""

    provider = PROVIDER
    token_label = _TOKEN_LABEL
    token_margin = TOKEN_MARGIN_SECONDS
    default_token_seconds = DEFAULT_TOKEN_SECONDS

    def __init__(
        self,
        *,
        account: str = "default",
        api_url: str,
        client_id: str,
        client_secret: str,
        user_jwt: str,
        avon_account: str | None = None,
        budget: RequestBudget,
        clock: Callable[[], float] = time.monotonic,
        options: ClientOptions = DEFAULT_OPTIONS,
    ) -> None:
        super().__init__(
            api_url, clock=clock, budget=budget, options=options,
            headers={"account": avon_account} if avon_account else None,
        )
        self.account = account
        self._client_id = client_id
        self._client_secret = client_secret
        self._user_jwt = user_jwt

    def __repr__(self) -> str:
        return f"AvonClient(account={self.account!r})"

    # --- auth ----------------------------------------------------------------------------

    async def auth_headers(self) -> dict[str, str]:
        return {**await super().auth_headers(), "x-jwt": self._user_jwt}

    async def request_token(self) -> httpx.Response:
        return await self._http.post(TOKEN_PATH, json={
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        })

    def token_in(self, body: dict[str, Any]) -> object:
        return body.get("access_token", body.get("token"))

    # --- ProviderApi ---------------------------------------------------------------------

    async def fetch(
        self, appointment_id: str, *, event_id: str, type: str, priority: Priority,
        clock: Callable[[], datetime],
    ) -> Event | None:
        """``GET /v2/appointments/{id}``, stamped just before the request is sent; None on 404."""
        if not APPOINTMENT_ID.fullmatch(appointment_id):
            raise PermanentApiError(f"{_GET_ONE}: not an Avon appointment id")
        stamp = to_micros(clock())
        body = await self.get_json(
            f"{APPOINTMENTS_PATH}/{appointment_id}", None, priority, missing_ok=True)
        if body is None:
            return None
        obj = _unwrapped(body)
        try:
            event = appointment_event(
                obj, event_id=event_id, type=type, occurred_at=stamp, account=self.account)
        except EnvelopeError as exc:
            raise PermanentApiError(f"{_GET_ONE}: unexpected response shape: {exc}",
                                    status=200) from None
        if event.appointment_id != appointment_id:
            raise PermanentApiError(f"{_GET_ONE}: answered for another appointment", status=200)
        return event

    async def sweep(
        self, window: Window, *, event_id: Callable[[str], str], clock: Callable[[], datetime],
        page_size: int = PAGE_SIZE, unchanged: Unchanged | None = None,
    ) -> AsyncIterator[SweepPage]:
        """Every listed appointment in ``window``, page by page, each id once (an event for
        each: ``unchanged`` is not asked)."""
        bounds = window
        seen: set[str] = set()
        offset = 0
        for number in range(1, MAX_PAGES + 1):
            params = httpx.QueryParams({"limit": str(page_size), "offset": str(offset)})
            stamp = to_micros(clock())
            body = await self.get_json(APPOINTMENTS_PATH, params, "sweep")
            assert body is not None  # not missing_ok
            rows = body.get("data")
            if not isinstance(rows, list):
                raise PermanentApiError(f"GET {APPOINTMENTS_PATH}: unexpected response shape: "
                                        "data is not a list", status=200)
            page = SweepPage(events=[], number=number, complete=True)
            new = sum(self._take(row, index, stamp, event_id, bounds, seen, page)
                      for index, row in enumerate(rows))
            more = body.get("has_more")
            if not rows or more is False:
                yield page
                return
            if not new:
                page.errors.append(f"paging stopped: page {number} listed nothing new")
                yield page
                return
            if number == MAX_PAGES:
                page.errors.append(f"paging stopped after {MAX_PAGES} pages")
            offset += len(rows)
            yield page

    def _take(
        self, row: object, index: int, stamp: int, event_id: Callable[[str], str],
        bounds: Window, seen: set[str], page: SweepPage,
    ) -> bool:
        """Map one listed row into ``page``; True when its id was not listed before (even if
        the row is unreadable: it still shows the listing moved on)."""
        row_id = row.get("id") if isinstance(row, dict) else None
        key = row_id if isinstance(row_id, str) else None
        if key is not None:
            if key in seen:
                return False
            seen.add(key)
        try:
            event = appointment_event(row, event_id=event_id(str(key)), type="sweep",
                                      occurred_at=stamp, account=self.account)
        except EnvelopeError as exc:
            page.errors.append(f"page {page.number} row {index}: {exc}")
            return key is not None
        if bounds.admits(event):
            page.events.append(event)
        return True


def _unwrapped(body: dict[str, Any]) -> dict[str, Any]:
    """The appointment object: the body itself (documented), or its ``data`` (a guess)."""
    data = body.get("data")
    if "id" not in body and isinstance(data, dict):
        return data
    return body




__all__ = ["MAX_PAGES", "PAGE_SIZE", "AvonClient"]
