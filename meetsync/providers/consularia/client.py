"""One Consularia Connect account's API client: one appointment, and the sweep listing.

Auth: the OpenAPI excerpt names the scheme ``ApiTokenAuth`` and nothing more. Its operation
ids (``appointments_list``, ``appointments_retrieve``) are drf-spectacular's, so the API is
most likely Django REST Framework, whose token scheme is ``Authorization: Token <key>``: we
send that (a guess). The token is never logged, put in an error message or in ``repr``.

Calls (paths with DRF's trailing slash, a guess: the excerpt shows no paths)::

    fetch   GET /appointments/{id}/        404 → None
    sweep   GET /appointments/?page=N&start_date=...&end_date=...

The listing (``{count, results, next?, previous?}``: the excerpt shows ``count`` and
``results``; DRF's page-number pagination adds ``next``/``previous``, read when present) is
paged by the server (its page size; none can be asked for). A sweep pages until ``results``
is empty, ``next`` is null, it has read ``count`` rows, or a later page answers 404 (DRF's
"Invalid page" once rows left under it); after ``MAX_PAGES`` pages, or on a page identical to
the one before (a server ignoring ``page``), it stops with an error.

Window → filters (``start_date``/``end_date``, read as bounds on ``start_date_time``: a
guess)::

    start_date  the later of starting_from and ending_after - MAX_DURATION (12 h: the
                documented maximum duration_minutes is 720), when either is set
    end_date    starting_before; else, with ending_after set (the reconciler's window),
                now + poll_window_days; else none

Rows are then checked against the window exactly (an end after ``ending_after``, a start in
``[starting_from, starting_before)``), whatever the server made of the filters.

Page-number paging shifts when rows are created or deleted between page requests: a row can
be served twice (dropped here: each id at most once) or skipped. When ``count`` changes during
a pass, or a later page answers 404, the sweep pages again from page 1 (at most
``MAX_PASSES`` passes; still shifting after that: a warning is logged), yielding only ids it
had not seen. The reconciler then fetches, one by one, what the mirror holds that no page
listed, so a held row skipped by every pass is still found; a new one is listed next sweep.

List items lack participants and ``updated_at``: sweep pages are incomplete
(``complete=False``). The reconciler compares status, start and end and fetches only new or
drifted appointments, plus ``rotation`` unchanged ones per sweep (those fetched longest ago
first): a participant change alone is found within ``ceil(listed / rotation)`` sweeps.

Errors are ``meetsync.providers.http``'s: ``RetryableApiError`` / ``PermanentApiError``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from meetsync.events import Event, iso_utc, to_micros
from meetsync.providers import EnvelopeError, SweepPage, Unchanged, Window, moment
from meetsync.providers.consularia.config import API_URL, POLL_WINDOW_DAYS, ROTATION_PER_SWEEP
from meetsync.providers.consularia.mapping import (
    PROVIDER,
    appointment_event,
    appointment_id,
    is_appointment_id,
)
from meetsync.providers.http import (
    DEFAULT_OPTIONS,
    ClientOptions,
    JsonApi,
    PermanentApiError,
    Priority,
    RequestBudget,
)

LIST_PATH = "/appointments/"
MAX_PAGES = 1000
MAX_PASSES = 3
MAX_DURATION = timedelta(minutes=720)

log = structlog.get_logger(__name__)


class ConsulariaClient(JsonApi):
    """``ProviderApi`` for one Consularia Connect account (see the module docstring)."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        account: str = "default",
        api_token: str,
        budget: RequestBudget,
        api_url: str = API_URL,
        poll_window_days: int = POLL_WINDOW_DAYS,
        rotation: int = ROTATION_PER_SWEEP,
        options: ClientOptions = DEFAULT_OPTIONS,
    ) -> None:
        super().__init__(
            api_url, budget=budget, headers={"authorization": f"Token {api_token}"},
            options=options,
        )
        self.account = account
        self.poll_window = timedelta(days=poll_window_days)
        self.rotation = rotation

    def __repr__(self) -> str:
        return f"ConsulariaClient(account={self.account!r})"

    async def fetch(
        self, appointment_id: str, *, event_id: str, type: str, priority: Priority,
        clock: Callable[[], datetime],
    ) -> Event | None:
        """``GET /appointments/{id}/``, stamped just before the request is sent; None on 404."""
        label = "GET /appointments/{id}/"
        if not is_appointment_id(appointment_id):
            raise PermanentApiError(f"{label}: not a Consularia appointment id")
        stamp = to_micros(clock())
        body = await self.get_json(f"/appointments/{appointment_id.lower()}/", None, priority,
                                   missing_ok=True)
        if body is None:
            return None
        try:
            event = appointment_event(body, event_id=event_id, type=type, occurred_at=stamp,
                                      account=self.account, detail=True)
        except EnvelopeError as exc:
            raise PermanentApiError(f"{label}: unexpected response shape: {exc}",
                                    status=200) from None
        if event.appointment_id != appointment_id.lower():
            raise PermanentApiError(f"{label}: answered for another appointment", status=200)
        return event

    async def sweep(
        self, window: Window, *, event_id: Callable[[str], str], clock: Callable[[], datetime],
        page_size: int | None = None, unchanged: Unchanged | None = None,
    ) -> AsyncIterator[SweepPage]:
        """Every appointment in ``window``, page by page, each id once. ``page_size`` is
        ignored: Consularia's page size is the server's; so is ``unchanged`` (its listing
        lacks details: ``SweepPage.complete`` False)."""
        filters = _filters(window, clock(), self.poll_window)
        bounds = window
        seen: set[str] = set()
        state = _Pass()
        for passes in range(1, MAX_PASSES + 1):
            state = _Pass(number=state.number)
            async for page in self._pass(filters, bounds, seen, event_id, clock, state):
                yield page
            if state.capped or not state.moved:
                return
            log.info("consularia_listing_shifted", account=self.account, passes=passes)
        log.warning("consularia_listing_kept_shifting", account=self.account,
                    passes=MAX_PASSES)

    async def _pass(
        self, filters: dict[str, str], bounds: Window, seen: set[str],
        event_id: Callable[[str], str], clock: Callable[[], datetime], state: _Pass,
    ) -> AsyncIterator[SweepPage]:
        """One pass from page 1; ``state`` says whether rows moved under it."""
        first_count: int | None = None
        first_size = 0
        read = 0
        previous: list[Any] | None = None
        for page_no in range(1, MAX_PAGES + 1):
            params = httpx.QueryParams({"page": str(page_no), **filters})
            stamp = to_micros(clock())
            body = await self.get_json(LIST_PATH, params, "sweep", missing_ok=page_no > 1)
            if body is None:  # DRF's "Invalid page.": rows left under the pass
                state.moved = True
                return
            rows, count, has_next = _listing(body)
            if page_no == 1:
                first_count, first_size = count, len(rows)
            elif count != first_count:
                state.moved = True
            state.number += 1
            of = None
            if first_count is not None and first_size and not state.moved:
                of = state.number - page_no + math.ceil(first_count / first_size)
            page = SweepPage(events=[], number=state.number, of=of, complete=False)
            for index, row in enumerate(rows):
                self._take(row, index, stamp, event_id, bounds, seen, page)
            read += len(rows)
            last = (not rows or has_next is False
                    or (count is not None and read >= count and has_next is not True))
            if not last and rows == previous:
                page.errors.append(f"paging stopped: page {page_no} repeated the page before")
                state.capped = True
            elif not last and page_no == MAX_PAGES:
                page.errors.append(f"paging stopped after {MAX_PAGES} pages")
                state.capped = True
            previous = rows
            yield page
            if last or state.capped:
                return

    def _take(
        self, row: object, index: int, stamp: int, event_id: Callable[[str], str],
        bounds: Window, seen: set[str], page: SweepPage,
    ) -> None:
        try:
            if not isinstance(row, dict):
                raise EnvelopeError("appointment must be an object")
            key = appointment_id(row)
            if key in seen:
                return
            event = appointment_event(row, event_id=event_id(key), type="sweep",
                                      occurred_at=stamp, account=self.account, detail=False)
        except EnvelopeError as exc:
            page.errors.append(f"page {page.number} row {index}: {exc}")
            return
        seen.add(key)
        if bounds.admits(event):
            page.events.append(event)


def _listing(body: dict[str, Any]) -> tuple[list[Any], int | None, bool | None]:
    """A list page's rows, its ``count`` (None if absent) and whether ``next`` says there is a
    next page (None when the page has no ``next`` key)."""
    rows = body.get("results", [])
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        raise PermanentApiError(f"GET {LIST_PATH}: unexpected response shape: results is not "
                                "a list", status=200)
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        count = None
    has_next = None if "next" not in body else bool(body["next"])
    return rows, count, has_next


def _filters(window: Window, now: datetime, poll_window: timedelta) -> dict[str, str]:
    """``start_date``/``end_date`` for ``window`` (see the module docstring)."""
    lows = [m for m in (moment(window.starting_from),) if m is not None]
    ending_after = moment(window.ending_after)
    if ending_after is not None:
        lows.append(ending_after - MAX_DURATION)
    found: dict[str, str] = {}
    if lows:
        found["start_date"] = iso_utc(max(lows))
    starting_before = moment(window.starting_before)
    if starting_before is not None:
        found["end_date"] = iso_utc(starting_before)
    elif ending_after is not None:
        found["end_date"] = iso_utc(now + poll_window)
    return found


@dataclass(slots=True)
class _Pass:
    """One pass over the listing: pages yielded so far in the sweep, and what it met."""

    number: int = 0
    moved: bool = False  # count changed, or a later page vanished: rows shifted under it
    capped: bool = False  # stopped: MAX_PAGES, or a server that ignores ``page``




__all__ = ["LIST_PATH", "MAX_DURATION", "MAX_PAGES", "MAX_PASSES", "ConsulariaClient"]
