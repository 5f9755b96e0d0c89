"""The reconciler: sweep the provider's API, compare with the mirror field by field, repair.

Webhooks get lost, arrive late or out of order; the provider's API is the truth. One run:

1. lists the appointments that matter (ending after now - 24 h: upcoming, in progress and
   recently ended; ``period == upcoming`` if the provider refuses that filter; every one with
   ``scope="all"``) page by page; pages are offsets, so rows can shift while we page:
   repeats are dropped, and a sweep that saw fewer rows than the provider counted at any
   point while it paged pages again once;
2. fetches one by one the appointments the mirror holds in the window (ending after now - 24 h)
   that the listing did not return: in progress, rescheduled out of it, canceled, or gone (404);
3. compares each with the mirror and writes every drifted one through the same guarded path
   webhooks use, as a snapshot stamped when its request was sent (the response may reflect
   any moment after that): a webhook for a change made meanwhile still wins;
4. records the run (window, pages, API calls, drift per field, repaired, errors, outcome).

A run cut short by rate limits or errors is recorded as ``partial`` (some work done) or
``failed`` (none) — never as a success; a run that dies (cancelled, a bug) is recorded as
``failed`` before the exception goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import structlog

from meetsync.events import Event, iso_utc, to_micros
from meetsync.providers import EnvelopeError
from meetsync.providers.savvycal import appointment_event
from meetsync.providers.savvycal.client import (
    MAX_PAGE_SIZE,
    ApiError,
    PermanentApiError,
    SavvyCalClient,
)
from meetsync.store import Failure, Store
from meetsync.store.apply import CREDENTIAL_GRACE
from meetsync.store.mirror import SNAPSHOT_FIELDS
from meetsync.worker.applier import StoreThread

log = structlog.get_logger(__name__)

UPCOMING = [{"field": "period", "op": "==", "value": "upcoming"}]
CREDENTIALS = ("meeting.host_url", "meeting.password")
Scope = Literal["window", "all"]


@dataclass
class RunReport:
    """What one reconcile run found and did; stored in ``reconcile_runs``."""

    run_id: int = 0
    scope: str = "window"
    outcome: str = "running"
    pages: int = 0
    api_calls: int = 0
    appointments_seen: int = 0
    drift: Counter[str] = field(default_factory=Counter)
    drifted: int = 0
    repaired: int = 0
    gone: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "scope": self.scope,
            "outcome": self.outcome,
            "pages": self.pages,
            "api_calls": self.api_calls,
            "appointments_seen": self.appointments_seen,
            "drifted": self.drifted,
            "drift_by_field": dict(sorted(self.drift.items())),
            "repaired": self.repaired,
            "gone": self.gone,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
        }


def snapshot_of(event: Event) -> dict[str, Any]:
    """An event in the shape of ``Store.snapshots`` rows, for a field-by-field comparison."""
    m = event.meeting
    values = (
        event.appointment_status, event.start_at, event.end_at, m and m.id, m and m.status,
        m and m.conferencing_provider, m and m.external_meeting_id, m and m.join_url,
        m and m.host_url, m and m.password, m and m.error_message,
    )
    return dict(zip(SNAPSHOT_FIELDS, values, strict=True))


def drift(truth: dict[str, Any], mirror: dict[str, Any] | None, *, expired: bool) -> list[str]:
    """The fields where the mirror differs from the provider (all of them if it lacks the row).

    Credentials of an appointment over its 24 h grace are purged locally on purpose: no drift.
    """
    if mirror is None:
        return ["missing"]
    return [
        name for name in SNAPSHOT_FIELDS
        if truth[name] != mirror[name] and not (expired and name in CREDENTIALS)
    ]


class Reconciler:
    """Finds and repairs drift between the mirror and the provider."""

    def __init__(
        self,
        client: SavvyCalClient,
        store: StoreThread,
        *,
        scope: Scope = "window",
        filters: list[dict[str, Any]] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.scope = scope
        self.filters = filters
        self.page_size = page_size
        self.clock = clock
        self.progress = progress or (lambda _line: None)

    async def run(self) -> RunReport:
        started = time.monotonic()
        spent_before = self._attempts()
        now = self.clock()
        cutoff = iso_utc(now - CREDENTIAL_GRACE)
        report = RunReport(scope=self.scope)
        report.run_id = await self.store.run(
            lambda s: s.start_run(cutoff if self.scope == "window" else None, None)
        )
        truth: dict[str, Event] = {}
        try:
            try:
                await self._sweep(truth, cutoff, report)
                await self._fetch_unlisted(truth, cutoff, report)
            except ApiError as exc:
                report.errors.append(str(exc))
                log.warning("reconcile_interrupted", error=str(exc), run_id=report.run_id)
            await self._repair(truth, cutoff, report)
        except BaseException as exc:
            # Cancelled (a job timeout) or a bug: the run must not stay "running" forever.
            report.errors.append(f"run died: {type(exc).__name__}: {exc}"[:500])
            report.outcome = "failed"
            await self._finish(report, started, spent_before)
            raise
        if not report.errors:
            report.outcome = "success"
        else:
            report.outcome = "partial" if report.pages or truth else "failed"
        await self._finish(report, started, spent_before)
        log.info("reconcile_finished", **report.summary())
        return report

    def _attempts(self) -> int:
        """HTTP requests this run's client made (retries included); the shared budget's count
        would include other callers' requests."""
        return self.client.calls + self.client.retries

    async def _finish(self, report: RunReport, started: float, spent_before: int) -> None:
        report.api_calls = self._attempts() - spent_before
        report.seconds = time.monotonic() - started
        await self.store.run(lambda s: s.finish_run(
            report.run_id, outcome=report.outcome, pages=report.pages,
            api_calls=report.api_calls, appointments_seen=report.appointments_seen,
            drift=orjson.dumps(report.drift).decode(), repaired=report.repaired,
            errors=orjson.dumps(report.errors).decode(),
        ))

    async def _sweep(self, truth: dict[str, Event], cutoff: str, report: RunReport) -> None:
        if self.scope == "all":
            await self._list(self.filters, truth, report)
            return
        try:
            # Everything ending after now - 24 h: upcoming, in progress and recently ended.
            await self._list([{"field": "end_at", "op": ">=", "value": cutoff}], truth, report)
        except PermanentApiError as exc:
            if exc.status not in (400, 422):
                raise
            # The documented filter only; held appointments it misses are fetched one by one.
            log.info("reconcile_filter_fallback", filter="period == upcoming")
            await self._list(UPCOMING, truth, report)

    async def _list(
        self, filters: list[dict[str, Any]] | None, truth: dict[str, Event], report: RunReport
    ) -> None:
        for _pass in range(2):
            page, seen, most = 1, set[str](), 0
            while True:
                # Stamped before asking: whatever the answer holds happened after this.
                fetched = to_micros(self.clock())
                result = await self.client.list_appointments(
                    page=page, page_size=self.page_size, filters=filters
                )
                report.pages += 1
                most = max(most, result.total_count)
                for row in result.data:
                    seen.add(str(row.get("id")))
                    self._take(row, fetched, truth, report)
                self.progress(f"sweep: page {page}/{result.total_pages}, {len(truth)} seen")
                if page >= result.total_pages or not result.data:
                    break
                page += 1
            # Fewer rows than the provider ever counted while we paged: one added before the
            # cursor is behind us, or one removed before it let the next slip past unseen.
            # (Rows added after the cursor are seen: new bookings alone cost no second pass.)
            if len(seen) >= most:
                return
            log.info("reconcile_sweep_short", seen=len(seen), total=most)

    def _take(self, row: dict[str, Any], fetched: int, truth: dict[str, Event],
              report: RunReport) -> None:
        try:
            event = appointment_event(
                row, event_id=f"reconcile:{report.run_id}:{row.get('id')}",
                type="reconcile", occurred_at=fetched,
            )
        except EnvelopeError as exc:
            report.errors.append(f"unreadable appointment from the API: {exc}")
            return
        truth.setdefault(event.appointment_id, event)

    async def _fetch_unlisted(
        self, truth: dict[str, Event], cutoff: str, report: RunReport
    ) -> None:
        provider = self.client.provider
        held = await self.store.run(
            lambda s: s.appointments_ending_after(cutoff, provider=provider))
        unlisted = [appointment_id for appointment_id in held if appointment_id not in truth]
        for n, appointment_id in enumerate(unlisted, 1):
            fetched = to_micros(self.clock())
            row = await self.client.get_appointment(appointment_id, priority="sweep")
            if row is None:
                report.gone += 1
                truth[appointment_id] = Event(
                    id=f"reconcile:{report.run_id}:{appointment_id}", provider=provider,
                    type="reconcile.gone", occurred_at=fetched, appointment_id=appointment_id,
                    appointment_status="deleted", no_meeting=True,
                )
            else:
                self._take(row, fetched, truth, report)
            if n % 50 == 0 or n == len(unlisted):
                self.progress(f"fetch: {n}/{len(unlisted)} held appointments not listed")

    async def _repair(self, truth: dict[str, Event], cutoff: str, report: RunReport) -> None:
        report.appointments_seen = len(truth)
        ids = list(truth)
        provider = self.client.provider
        mirror = await self.store.run(lambda s: s.snapshots(ids, provider=provider))
        repairs: list[Event] = []
        for appointment_id, event in truth.items():
            held = mirror.get(appointment_id)
            if event.type == "reconcile.gone":
                if held is None or _gone(held):
                    continue
                # Keep the times the mirror knew: its credentials still expire after the end.
                event = replace(event, start_at=held["start_at"], end_at=held["end_at"])
                found = ["status"]
            else:
                expired = _expired(event, cutoff)
                if expired and event.meeting is not None:
                    # Purged here on purpose: never write a dead credential back.
                    event = replace(event, meeting=replace(
                        event.meeting, host_url=None, password=None))
                found = drift(snapshot_of(event), held, expired=expired)
            if found:
                report.drift.update(found)
                repairs.append(event)
        report.drifted = len(repairs)
        if not repairs:
            return
        failures = await self.store.run(lambda s: _apply_all(s, repairs))
        for failure in failures:
            report.errors.append(f"could not write {failure.event.appointment_id}: "
                                 f"{failure.reason}")
        after = await self.store.run(
            lambda s: s.snapshots([e.appointment_id for e in repairs], provider=provider))
        for event in repairs:
            now_held = after.get(event.appointment_id)
            if event.type == "reconcile.gone":
                report.repaired += bool(now_held and _gone(now_held))
            elif not drift(snapshot_of(event), now_held, expired=_expired(event, cutoff)):
                report.repaired += 1


def _gone(held: dict[str, Any]) -> bool:
    """The mirror already says the appointment is gone: deleted, with no current meeting."""
    return bool(held["status"] == "deleted" and held["meeting_id"] is None)


def _expired(event: Event, cutoff: str) -> bool:
    """Ended over 24 h ago: its credentials are dead (seeds/001) and purged from the mirror."""
    return bool(event.end_at and event.end_at <= cutoff)


def _apply_all(store: Store, events: list[Event]) -> list[Failure]:
    failures: list[Failure] = []
    for start in range(0, len(events), 1000):
        failures += store.apply(events[start : start + 1000])[1]
    return failures
