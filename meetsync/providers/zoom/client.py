"""One Zoom account's API client: Server-to-Server OAuth, one meeting, and the sweep listing.

Auth (Server-to-Server OAuth, "account credentials" grant)::

    POST {ZOOM_OAUTH_URL}   authorization: Basic base64(client_id:client_secret)
        form body: grant_type=account_credentials&account_id={ZOOM_ACCOUNT_ID}
    → {"access_token": "...", "token_type": "bearer", "expires_in": 3600, "scope": "..."}

Zoom's docs show the two parameters in the query string; its SDK (rivet-javascript) sends them
as a form body, which OAuth servers accept: we send the form body (a guess either way). The
token is cached until ``TOKEN_MARGIN_SECONDS`` before it expires (one request at a time fetches
it), dropped on a 401 (``reauthenticate``: the request is retried once with a fresh one), and
its request takes a unit of the account's budget like any other. Neither the token nor the
client secret is ever logged or put in an error message.

Calls::

    fetch   GET /meetings/{id}?show_previous_occurrences=true
                                          404 (Zoom's code 3001 "meeting not found" comes
                                          with 404) → None
    sweep   GET /users?status=active&page_size=300&next_page_token=...   (unless listed)
            then for each user:
            GET /users/{userId}/meetings?type=live&page_size=300&next_page_token=...
            GET /users/{userId}/meetings?type=scheduled&page_size=300&next_page_token=...

A fetch asks for a recurring meeting's past occurrences too (Zoom lists only the upcoming
ones by default): a fetched list replaces the mirror's whole set, and one without them would
drop each occurrence from the mirror once it passed.

The listing's rows lack ``start_url``, the passcode and the status, so sweep pages are
incomplete (``complete=False``): the sweeper fetches those that drifted. ``type=scheduled``
lists every meeting not deleted (Zoom: "valid previous (unexpired), live and upcoming"), so a
meeting that ended within the window is listed even when the mirror never heard of it
(``type=upcoming`` left those out); the rows outside the window are dropped here. The meetings
listed by ``type=live`` first (usually one short page) say ``started``, the others
``scheduled``: without it a lost ``meeting.started`` never showed as drift. Paging stops with
an error on a repeated ``next_page_token`` or after ``MAX_PAGES`` pages.

Whose meetings: the users the settings list (``user_ids``: ids, emails or ``me``), else every
active user of the account (Zoom's "List users", https://developers.zoom.us/docs/api/users/:
``{"users": [{"id", "email", "status", ...}], "next_page_token", "page_size",
"total_records"}``), listed at the start of each sweep so a new host is swept from the next
one on. A meeting has one host, so each user's listing adds its own meetings; an id listed
twice (a meeting moved to another host between two listings) is taken once. Every request is
a unit of the account's budget (``sweep`` priority, behind refetches), so a sweep of N users
costs 1 + 2 N requests (more with pages) and takes at least that many requests' time at the
account's rate: set ``user_ids`` to sweep fewer. A listed user Zoom no longer knows (404)
is skipped (an error when the settings named it).

Errors are ``meetsync.providers.http``'s: ``RetryableApiError`` / ``PermanentApiError``.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from urllib.parse import quote

import httpx

from meetsync.events import Event, to_micros
from meetsync.providers import EnvelopeError, SweepPage, Unchanged, Window
from meetsync.providers.http import (
    DEFAULT_OPTIONS,
    ClientOptions,
    PermanentApiError,
    Priority,
    RequestBudget,
    TokenApi,
)
from meetsync.providers.zoom.config import API_URL, OAUTH_URL, START_URL_TTL_SECONDS
from meetsync.providers.zoom.mapping import PROVIDER, meeting_event, meeting_id

PAGE_SIZE = 300  # Zoom's maximum for this listing
USERS_PAGE_SIZE = 300  # and for List users (a "Light" API: up to 300 a page)
MAX_PAGES = 1000
TOKEN_MARGIN_SECONDS = 300
DEFAULT_TOKEN_SECONDS = 3600  # Zoom's S2S tokens live an hour; used if expires_in is missing

_ID = re.compile(r"[0-9]{1,20}")
_OAUTH_LABEL = "POST oauth token"
_ALL_OCCURRENCES = httpx.QueryParams({"show_previous_occurrences": "true"})


class ZoomClient(TokenApi):
    """``ProviderApi`` for one Zoom account (see the module docstring)."""

    provider = PROVIDER
    token_label = _OAUTH_LABEL
    token_margin = TOKEN_MARGIN_SECONDS
    default_token_seconds = DEFAULT_TOKEN_SECONDS

    def __init__(
        self,
        *,
        account: str = "default",
        account_id: str,
        client_id: str,
        client_secret: str,
        budget: RequestBudget,
        api_url: str = API_URL,
        oauth_url: str = OAUTH_URL,
        ttl_seconds: int = START_URL_TTL_SECONDS,
        user_ids: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        options: ClientOptions = DEFAULT_OPTIONS,
    ) -> None:
        super().__init__(api_url, clock=clock, budget=budget, options=options)
        self.account = account
        self.ttl_seconds = ttl_seconds
        self.user_ids = None if user_ids is None else tuple(user_ids)
        self._oauth_url = oauth_url
        self._account_id = account_id
        self._credentials = httpx.BasicAuth(client_id, client_secret)

    def __repr__(self) -> str:
        return f"ZoomClient(account={self.account!r})"

    # --- OAuth ---------------------------------------------------------------------------

    async def request_token(self) -> httpx.Response:
        return await self._http.post(
            self._oauth_url,
            data={"grant_type": "account_credentials", "account_id": self._account_id},
            auth=self._credentials,
        )

    # --- ProviderApi ---------------------------------------------------------------------

    async def fetch(
        self, appointment_id: str, *, event_id: str, type: str, priority: Priority,
        clock: Callable[[], datetime],
    ) -> Event | None:
        """``GET /meetings/{id}``, stamped just before the request is sent; None on 404."""
        if not _ID.fullmatch(appointment_id):
            raise PermanentApiError("GET /meetings/{id}: not a Zoom meeting id")
        stamp = to_micros(clock())
        body = await self.get_json(f"/meetings/{appointment_id}", _ALL_OCCURRENCES, priority,
                                   missing_ok=True)
        if body is None:
            return None
        try:
            event = meeting_event(
                body, event_id=event_id, type=type, occurred_at=stamp, account=self.account,
                ttl_seconds=self.ttl_seconds, fetched=True)
        except EnvelopeError as exc:
            raise PermanentApiError(f"GET /meetings/{{id}}: unexpected response shape: {exc}",
                                    status=200) from None
        if event.appointment_id != appointment_id:
            raise PermanentApiError("GET /meetings/{id}: answered for another meeting",
                                    status=200)
        return event

    async def sweep(
        self, window: Window, *, event_id: Callable[[str], str], clock: Callable[[], datetime],
        unchanged: Unchanged | None = None,
    ) -> AsyncIterator[SweepPage]:
        """Every meeting in ``window`` of each user swept (the module docstring), page by
        page, each id once (live ones ``started``). ``unchanged`` is not asked (its listing
        lacks details: ``SweepPage.complete`` False)."""
        users, errors = await self._users()
        seen: set[str] = set()
        number = 0
        for user in users:
            async for page in self._user_pages(user, number, window, event_id, clock, seen):
                number = page.number
                if errors:  # the users listing's, on the first page
                    page.errors[:0] = errors
                    errors = []
                yield page
        if errors or not number:  # say why nothing was swept, or that nobody was
            yield SweepPage(events=[], errors=errors, number=number + 1, complete=False)

    async def _users(self) -> tuple[list[str], list[str]]:
        """The users to sweep, and what went wrong listing them."""
        if self.user_ids is not None:
            return list(self.user_ids), []
        found: dict[str, None] = {}
        errors: list[str] = []
        tokens: set[str] = set()
        token = ""
        for _ in range(MAX_PAGES):
            params = httpx.QueryParams(
                {"status": "active", "page_size": str(USERS_PAGE_SIZE)}
                | ({"next_page_token": token} if token else {}))
            try:
                body = await self.get_json("/users", params, "sweep")
            except PermanentApiError as exc:  # most likely a scope the app lacks
                raise PermanentApiError(
                    f"{exc} (listing the account's users needs the app's "
                    "user:read:list_users:admin scope; or set ZOOM_USER_IDS)",
                    status=exc.status) from None
            assert body is not None  # not missing_ok
            rows = body.get("users")
            if not isinstance(rows, list):
                raise PermanentApiError("GET /users: unexpected response shape: users is not "
                                        "a list", status=200)
            for index, row in enumerate(rows):
                user = row.get("id") if isinstance(row, dict) else None
                if isinstance(user, str) and user and row.get("status", "active") == "active":
                    found[user] = None
                elif not (isinstance(user, str) and user):
                    errors.append(f"users page row {index}: no user id")
            following = body.get("next_page_token")
            if not isinstance(following, str) or not following:
                return list(found), errors
            if following in tokens:
                errors.append("users paging stopped: next_page_token repeated")
                return list(found), errors
            tokens.add(following)
            token = following
        errors.append(f"users paging stopped after {MAX_PAGES} pages")
        return list(found), errors

    async def _user_pages(
        self, user: str, number: int, window: Window, event_id: Callable[[str], str],
        clock: Callable[[], datetime], seen_ids: set[str],
    ) -> AsyncIterator[SweepPage]:
        """One user's meetings in ``window``, as pages numbered on from ``number``."""
        path = f"/users/{quote(user, safe='')}/meetings"
        live = await self._live_ids(path)
        if live is None:
            if self.user_ids is not None:  # named in the settings: say so
                yield SweepPage(events=[], number=number + 1, complete=False, errors=[
                    f"user {user!r}: not found at Zoom (HTTP 404); check user_ids"])
            return  # listed, then gone (deleted or deactivated meanwhile)
        seen_tokens: set[str] = set()
        next_token = ""
        for count in range(1, MAX_PAGES + 1):
            params = httpx.QueryParams(
                {"type": "scheduled", "page_size": str(PAGE_SIZE)}
                | ({"next_page_token": next_token} if next_token else {}))
            stamp = to_micros(clock())
            body = await self.get_json(path, params, "sweep", missing_ok=True)
            page = SweepPage(events=[], number=number + count, complete=False)
            if body is None:
                return  # gone since its type=live listing
            rows = body.get("meetings", [])
            if not isinstance(rows, list):
                raise PermanentApiError(f"GET {path}: unexpected response shape: meetings "
                                        "is not a list", status=200)
            for index, row in enumerate(rows):
                self._take(row, index, stamp, event_id, window, seen_ids, live, page)
            token = body.get("next_page_token")
            if not isinstance(token, str) or not token:
                yield page
                return
            if token in seen_tokens:
                page.errors.append("paging stopped: next_page_token repeated")
                yield page
                return
            seen_tokens.add(token)
            next_token = token
            if count == MAX_PAGES:
                page.errors.append(f"paging stopped after {MAX_PAGES} pages")
            yield page

    async def _live_ids(self, path: str) -> set[str] | None:
        """The ids ``type=live`` lists: the meetings in progress (list rows carry no status);
        None when Zoom does not know the user (404)."""
        found: set[str] = set()
        token = ""
        for _ in range(MAX_PAGES):
            params = httpx.QueryParams(
                {"type": "live", "page_size": str(PAGE_SIZE)}
                | ({"next_page_token": token} if token else {}))
            body = await self.get_json(path, params, "sweep", missing_ok=True)
            if body is None:
                return None
            rows = body.get("meetings", [])
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict):
                    with contextlib.suppress(EnvelopeError):
                        found.add(meeting_id(row))
            following = body.get("next_page_token")
            if not isinstance(following, str) or not following or following == token:
                break
            token = following
        return found

    def _take(
        self, row: object, index: int, stamp: int, event_id: Callable[[str], str],
        bounds: Window, seen: set[str], live: set[str], page: SweepPage,
    ) -> None:
        try:
            if not isinstance(row, dict):
                raise EnvelopeError("meeting must be an object")
            appointment_id = meeting_id(row)
            if appointment_id in seen:
                return
            if appointment_id in live and "status" not in row:
                row = {**row, "status": "started"}
            event = meeting_event(
                row, event_id=event_id(appointment_id), type="sweep", occurred_at=stamp,
                account=self.account, ttl_seconds=self.ttl_seconds, fetched=False, listed=True)
        except EnvelopeError as exc:
            page.errors.append(f"page {page.number} row {index}: {exc}")
            return
        seen.add(appointment_id)
        if bounds.admits(event):
            page.events.append(event)


__all__ = ["MAX_PAGES", "PAGE_SIZE", "USERS_PAGE_SIZE", "ZoomClient"]
