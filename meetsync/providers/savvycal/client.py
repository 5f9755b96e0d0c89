"""The async SavvyCal Appointments API client: one account's ``ProviderApi``.

``GET /appointments/{id}`` and ``GET /appointments`` (pages by offset), budgeted and
retried by ``JsonApi``; ``fetch`` and ``sweep`` turn Appointments into ``Event``s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog

from meetsync.events import Event, to_micros
from meetsync.providers import EnvelopeError, SweepPage, Unchanged, Window
from meetsync.providers.http import (
    DEFAULT_OPTIONS,
    ApiError,
    ClientOptions,
    JsonApi,
    PermanentApiError,
    Priority,
    RequestBudget,
    RetryableApiError,
    json_object,
)
from meetsync.providers.savvycal.envelope import (
    PROVIDER,
    appointment_event,
    appointment_snapshot,
)

log = structlog.get_logger(__name__)

MAX_PAGE_SIZE = 100
UPCOMING = [{"field": "period", "op": "==", "value": "upcoming"}]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``GET /appointments``."""

    data: list[dict[str, Any]]
    current_page: int
    page_size: int
    total_count: int
    total_pages: int


class SavvyCalClient(JsonApi):
    """One SavvyCal account's API: the raw calls, and ``fetch``/``sweep`` as ``Event``s.

    Counters: ``calls`` (method calls), ``retries`` (extra attempts), ``rate_limited`` (429s).
    """

    provider = PROVIDER  # whose appointments it serves: the mirror's key with their ids

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        account_id: str | None = None,
        account: str = "default",
        budget: RequestBudget,
        options: ClientOptions = DEFAULT_OPTIONS,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"}
        if account_id:
            headers["x-savvycal-account"] = account_id
        super().__init__(base_url, budget=budget, headers=headers, options=options)
        self.account = account

    async def get_appointment(
        self, appointment_id: str, *, priority: Priority = "refetch"
    ) -> dict[str, Any] | None:
        """The Appointment, or None when the provider does not know it (404)."""
        body = await self.get_json(
            f"/appointments/{appointment_id}", None, priority, missing_ok=True)
        if body is None:
            return None
        return json_object(body.get("data"), "data")

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
        body = await self.get_json("/appointments", query, priority)
        assert body is not None
        meta = json_object(body.get("meta"), "meta")
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

    # --- ProviderApi ------------------------------------------------------------------------

    async def fetch(
        self, appointment_id: str, *, event_id: str, type: str, priority: Priority = "refetch",
        clock: Callable[[], datetime],
    ) -> Event | None:
        """The Appointment as an ``Event`` stamped before asking; None on a 404."""
        asked_at = to_micros(clock())
        row = await self.get_appointment(appointment_id, priority=priority)
        if row is None:
            return None
        return appointment_event(row, event_id=event_id, type=type, occurred_at=asked_at,
                                 account=self.account)

    async def sweep(
        self, window: Window, *, event_id: Callable[[str], str], clock: Callable[[], datetime],
        page_size: int = MAX_PAGE_SIZE, unchanged: Unchanged | None = None,
    ) -> AsyncIterator[SweepPage]:
        """Pages of the window's appointments, each id once; with ``unchanged``, an event only
        for each row the mirror does not hold as listed (``SweepPage.unchanged``: the others).

        ``ending_after`` is asked as an ``end_at`` filter; a provider refusing it (400/422)
        gets the documented ``period == upcoming`` instead (the worker fetches held
        appointments the listing misses). Pages are offsets, so rows can shift while we page:
        a pass that saw fewer rows than the provider counted at any point pages once more.
        """
        starts = [
            {"field": "start_at", "op": op, "value": value}
            for op, value in ((">=", window.starting_from), ("<", window.starting_before))
            if value
        ]
        filters: list[dict[str, Any]] | None = starts or None
        if window.ending_after is not None:
            filters = [{"field": "end_at", "op": ">=", "value": window.ending_after}, *starts]
        seen: set[str] = set()
        try:
            async for page in self._passes(filters, seen, event_id, clock, page_size, unchanged):
                yield page
        except PermanentApiError as exc:
            if window.ending_after is None or exc.status not in (400, 422) or seen:
                raise
            log.info("reconcile_filter_fallback", filter="period == upcoming")
            async for page in self._passes(UPCOMING, seen, event_id, clock, page_size, unchanged):
                yield page

    async def _passes(
        self, filters: list[dict[str, Any]] | None, seen: set[str],
        event_id: Callable[[str], str], clock: Callable[[], datetime], page_size: int,
        unchanged: Unchanged | None,
    ) -> AsyncIterator[SweepPage]:
        for _pass in range(2):
            page, listed, most = 1, set[str](), 0
            while True:
                # Stamped before asking: whatever the answer holds happened after this.
                fetched = to_micros(clock())
                result = await self.list_appointments(
                    page=page, page_size=page_size, filters=filters)
                most = max(most, result.total_count)
                out = SweepPage([], number=page, of=result.total_pages)
                same = await self._unchanged(result.data, seen, unchanged)
                for row in result.data:
                    row_id = str(row.get("id"))
                    listed.add(row_id)
                    if row_id in seen:
                        continue
                    if row_id in same:
                        out.unchanged.append(row_id)
                        seen.add(row_id)
                        continue
                    try:
                        out.events.append(appointment_event(
                            row, event_id=event_id(row_id), type="reconcile",
                            occurred_at=fetched, account=self.account))
                    except EnvelopeError as exc:
                        out.errors.append(f"unreadable appointment from the API: {exc}")
                        continue
                    seen.add(row_id)
                yield out
                if page >= result.total_pages or not result.data:
                    break
                page += 1
            # Fewer rows than the provider ever counted while we paged: one added before the
            # cursor is behind us, or one removed before it let the next slip past unseen.
            # (Rows added after the cursor are seen: new bookings alone cost no second pass.)
            if len(listed) >= most:
                return
            log.info("reconcile_sweep_short", seen=len(listed), total=most)

    @staticmethod
    async def _unchanged(
        rows: list[dict[str, Any]], seen: set[str], unchanged: Unchanged | None
    ) -> Collection[str]:
        """The ids of ``rows`` (not yet seen) that the mirror holds as listed: one question
        a page, on values read without building events (``appointment_snapshot``)."""
        if unchanged is None:
            return ()
        values: dict[str, tuple[object, ...]] = {}
        for row in rows:
            snapshot = appointment_snapshot(row)
            if snapshot is not None and row["id"] not in seen:
                values.setdefault(row["id"], snapshot)  # a repeated id: its first row counts
        return await unchanged(values) if values else ()


__all__ = [
    "MAX_PAGE_SIZE",
    "ApiError",
    "Page",
    "PermanentApiError",
    "Priority",
    "RequestBudget",
    "RetryableApiError",
    "SavvyCalClient",
]
