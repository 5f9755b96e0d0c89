"""The reconciler: sweep one account's API, compare with the mirror field by field, repair.

Webhooks get lost, arrive late or out of order; the provider's API is the truth. One run, for
one account of one provider (its ``ProviderApi``):

1. lists the appointments that matter (ending after now minus the provider's ``horizon``:
   upcoming, in progress and recently ended; every one with ``scope="all"``) page by page, as
   the provider pages (it drops repeats and pages again when rows shifted under it);
   a listing that lacks fields only a fetch returns (``SweepPage.complete`` False) is compared
   on what it holds, and only the appointments that drifted or are new are fetched in full;
   a provider that reads a listed row's values cheaply asks the mirror once a page which rows
   it holds as listed (``Unchanged``), and builds events for the others only;
2. fetches one by one the appointments the mirror holds in the window that the listing did not
   return: in progress, rescheduled out of it, canceled, or gone (the provider does not know
   them);
3. compares each with the mirror and writes every drifted one through the same guarded path
   webhooks use, as a snapshot stamped when its request was sent (the response may reflect
   any moment after that): a webhook for a change made meanwhile still wins; a repair that
   fails on its own goes to the applier's retries and dead letters (``worker/writes.py``);
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
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import structlog

from meetsync import metrics
from meetsync.credentials import dead
from meetsync.events import Event, gone, iso_utc, to_micros
from meetsync.providers import EnvelopeError, ProviderApi, Window
from meetsync.providers.http import ApiError
from meetsync.store.mirror import SNAPSHOT_FIELDS
from meetsync.worker.applier import StoreThread
from meetsync.worker.writes import SnapshotWriter

log = structlog.get_logger(__name__)

DEFAULT_HORIZON = timedelta(hours=24)
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


def drift(
    truth: dict[str, Any], mirror: dict[str, Any] | None, *, expired: bool = False,
    skip: tuple[str, ...] = (),
) -> list[str]:
    """The fields where the mirror differs from the provider (all of them if it lacks the row).

    Dead credentials are purged locally on purpose: no drift (``expired``: both are dead;
    ``skip``: fields the provider's snapshot does not hold).
    """
    if mirror is None:
        return ["missing"]
    return [
        name for name in SNAPSHOT_FIELDS
        if truth[name] != mirror[name] and not (expired and name in CREDENTIALS)
        and name not in skip
    ]


class Reconciler:
    """Finds and repairs drift between the mirror and one account of a provider."""

    def __init__(
        self,
        api: ProviderApi,
        store: StoreThread,
        *,
        scope: Scope = "window",
        window: Window | None = None,
        horizon: timedelta = DEFAULT_HORIZON,
        page_size: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[str], None] | None = None,
        writer: SnapshotWriter | None = None,
    ) -> None:
        self.api = api
        self.store = store
        # Repairs go through the one write path: failures to the applier (worker/writes.py).
        self.writer = writer or SnapshotWriter(store)
        self.scope = scope
        self.window = window or Window()
        self.horizon = horizon
        self.page_size = page_size
        self.clock = clock
        self.progress = progress or (lambda _line: None)
        self._rotated: set[str] = set()
        self._unchanged: set[str] = set()  # listed as the mirror holds them: no event built
        self._at = ""  # the run's start, as credentials' expiries are written

    async def run(self) -> RunReport:
        started = time.monotonic()
        self._rotated, self._unchanged = set(), set()
        spent_before = self._attempts()
        now = self.clock()
        self._at = iso_utc(now)
        cutoff = iso_utc(now - self.horizon)
        report = RunReport(scope=self.scope)
        report.run_id = await self.store.run(
            lambda s: s.start_run(cutoff if self.scope == "window" else None, None)
        )
        truth: dict[str, Event] = {}
        try:
            try:
                listed = await self._sweep(truth, cutoff, report)
                await self._fetch_unlisted(truth, listed, cutoff, report)
            except ApiError as exc:
                report.errors.append(str(exc))
                log.warning("reconcile_interrupted", error=str(exc), run_id=report.run_id,
                            provider=self.api.provider, account=self.api.account)
            await self._repair(truth, now, report)
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
        log.info("reconcile_finished", provider=self.api.provider, account=self.api.account,
                 **report.summary())
        return report

    def _attempts(self) -> int:
        """HTTP requests this run's client made (retries included); the shared budget's count
        would include other callers' requests."""
        return self.api.calls + self.api.retries

    async def _finish(self, report: RunReport, started: float, spent_before: int) -> None:
        report.api_calls = self._attempts() - spent_before
        report.seconds = time.monotonic() - started
        await self.store.run(lambda s: s.finish_run(
            report.run_id, outcome=report.outcome, pages=report.pages,
            api_calls=report.api_calls, appointments_seen=report.appointments_seen,
            drift=orjson.dumps(report.drift).decode(), repaired=report.repaired,
            errors=orjson.dumps(report.errors).decode(),
        ))
        metrics.reconcile_run(self.api.provider, self.api.account, report.outcome, report.drift,
                              report.repaired, report.seconds)

    def _event_id(self, report: RunReport) -> Callable[[str], str]:
        return lambda appointment_id: f"reconcile:{report.run_id}:{appointment_id}"

    async def _sweep(self, truth: dict[str, Event], cutoff: str, report: RunReport) -> set[str]:
        """List the window into ``truth``; returns every id listed."""
        window = self.window
        if self.scope == "window":
            window = replace(window, ending_after=cutoff)
        options = {} if self.page_size is None else {"page_size": self.page_size}
        partial: dict[str, Event] = {}
        async for page in self.api.sweep(
            window, event_id=self._event_id(report), clock=self.clock,
            unchanged=self._held_as_listed, **options
        ):
            report.pages += 1
            report.errors += page.errors
            for event in page.events:
                (truth if page.complete else partial).setdefault(event.appointment_id, event)
            self._unchanged.update(page.unchanged)
            of = f"/{page.of}" if page.of else ""
            seen = len(truth) + len(partial) + len(self._unchanged)
            self.progress(f"sweep: page {page.number}{of}, {seen} seen")
        if partial:
            await self._complete(partial, truth, report)
        return set(truth) | set(partial) | self._unchanged

    async def _held_as_listed(self, listed: dict[str, tuple[object, ...]]) -> set[str]:
        """``Unchanged``: the listed appointments this account's mirror holds as listed (no
        ``drift``), so neither turned into events nor repaired; one read a page."""
        ids, provider, account = list(listed), self.api.provider, self.api.account
        held = await self.store.run(
            lambda s: s.snapshot_values(ids, provider=provider, account=account))
        return {a for a, values in listed.items() if _same(values, held.get(a), self._at)}

    async def _complete(
        self, partial: dict[str, Event], truth: dict[str, Event], report: RunReport
    ) -> None:
        """Fetch in full the listed appointments whose listing differs from the mirror, and
        ``api.rotation`` more of the rest, those whose snapshot is oldest first: what a listing
        cannot show (participants, credentials) is then at most listed / rotation sweeps old."""
        ids = list(partial)
        provider, account = self.api.provider, self.api.account
        mirror = await self.store.run(lambda s: s.snapshots(ids, provider=provider))
        stale = [
            appointment_id for appointment_id, event in partial.items()
            if drift(snapshot_of(event), mirror.get(appointment_id), skip=CREDENTIALS)
        ]
        rotated: list[str] = []
        if self.api.rotation > 0:
            drifted = set(stale)
            unchanged = [a for a in ids if a not in drifted]
            times = await self.store.run(lambda s: s.snapshot_times(unchanged, provider=provider))
            rotated = sorted(unchanged, key=lambda a: (times.get(a, 0), a))[: self.api.rotation]
        log.debug("reconcile_partial_listing", provider=provider, account=account,
                  listed=len(partial), drifted=len(stale), rotated=len(rotated))
        self._rotated.update(rotated)
        await self._fetch(stale, truth, report, "listed and drifted")
        await self._fetch(rotated, truth, report, "listed, rotated")

    async def _fetch_unlisted(
        self, truth: dict[str, Event], listed: set[str], cutoff: str, report: RunReport
    ) -> None:
        provider, account = self.api.provider, self.api.account
        held = await self.store.run(
            lambda s: s.appointments_ending_after(cutoff, provider=provider, account=account))
        await self._fetch([a for a in held if a not in listed], truth, report, "held, not listed")

    async def _fetch(
        self, ids: list[str], truth: dict[str, Event], report: RunReport, what: str
    ) -> None:
        event_id = self._event_id(report)
        for n, appointment_id in enumerate(ids, 1):
            asked_at = to_micros(self.clock())
            try:
                event = await self.api.fetch(
                    appointment_id, event_id=event_id(appointment_id), type="reconcile",
                    priority="sweep", clock=self.clock)
            except EnvelopeError as exc:
                report.errors.append(f"unreadable appointment from the API: {exc}")
                continue
            if event is None:
                report.gone += 1
                event = gone(event_id(appointment_id), self.api.provider, appointment_id,
                             asked_at, type="reconcile.gone", account=self.api.account)
            truth[appointment_id] = event
            if n % 50 == 0 or n == len(ids):
                self.progress(f"fetch: {n}/{len(ids)} {what}")

    async def _repair(self, truth: dict[str, Event], now: datetime, report: RunReport) -> None:
        provider, account = self.api.provider, self.api.account
        owners = await self.store.run(lambda s: s.owners(list(truth), provider=provider))
        foreign = sorted(a for a in truth if owners.get(a, account) != account)
        if foreign:
            # Another account's appointments (the same ids listed by this one): theirs to
            # sweep; written from here they would only be refused (store/apply.py).
            log.warning("reconcile_account_conflict", provider=provider, account=account,
                        count=len(foreign), appointments=foreign[:10])
            truth = {a: e for a, e in truth.items() if a not in set(foreign)}
        report.appointments_seen = len(truth) + len(self._unchanged.difference(truth))
        ids = list(truth)
        mirror = await self.store.run(lambda s: s.snapshots(ids, provider=provider))
        repairs: list[Event] = []
        refreshed: list[Event] = []  # rotated, unchanged: written so its snapshot time moves on
        at = iso_utc(now)
        for appointment_id, event in truth.items():
            held = mirror.get(appointment_id)
            if event.type == "reconcile.gone":
                if held is None or _gone(held):
                    continue
                found = ["status"]  # it says nothing of times: the mirror keeps those it knew
            else:
                event = _without_dead_credentials(event, at)
                found = drift(snapshot_of(event), held, skip=_dead_fields(event, at))
            if found:
                report.drift.update(found)
                repairs.append(event)
            elif appointment_id in self._rotated:
                # The rotation fetches those whose snapshot is oldest first: unless this newer
                # (unchanged) snapshot is written, the same ones would be fetched every sweep.
                refreshed.append(event)
        report.drifted = len(repairs)
        if not repairs and not refreshed:
            return
        _, failures = await self.writer.write(repairs + refreshed)
        for failure in failures:
            report.errors.append(f"could not write {failure.event.appointment_id}: "
                                 f"{failure.reason}")
        after = await self.store.run(
            lambda s: s.snapshots([e.appointment_id for e in repairs], provider=provider))
        for event in repairs:
            now_held = after.get(event.appointment_id)
            if event.type == "reconcile.gone":
                report.repaired += bool(now_held and _gone(now_held))
            elif not drift(snapshot_of(event), now_held, skip=_dead_fields(event, at)):
                report.repaired += 1


def _same(listed: tuple[object, ...], held: tuple[Any, ...] | None, now: str) -> bool:
    """``drift`` found nothing, on ``Unchanged``'s values (the snapshot's, then when the
    credentials die): every field equal but a credential dead at ``now``."""
    if held is None:
        return False
    values = listed[:-2]
    if values == held:
        return True
    expiries = dict(zip(CREDENTIALS, listed[-2:], strict=True))
    return all(
        value == kept or (name in expiries and dead(_text_or_none(expiries[name]), now))
        for name, value, kept in zip(SNAPSHOT_FIELDS, values, held, strict=True)
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _gone(held: dict[str, Any]) -> bool:
    """The mirror already says the appointment is gone: deleted, with no current meeting."""
    return bool(held["status"] == "deleted" and held["meeting_id"] is None)


def _dead_fields(event: Event, now: str) -> tuple[str, ...]:
    """The meeting's credentials dead at ``now`` (purged from the mirror: no drift)."""
    m = event.meeting
    if m is None:
        return ()
    expired = (dead(m.host_url_expires_at, now), dead(m.password_expires_at, now))
    return tuple(name for name, is_dead in zip(CREDENTIALS, expired, strict=True) if is_dead)


def _without_dead_credentials(event: Event, now: str) -> Event:
    """Never write a dead credential back: the mirror purged it on purpose."""
    m = event.meeting
    if m is None:
        return event
    host_url = None if dead(m.host_url_expires_at, now) else m.host_url
    password = None if dead(m.password_expires_at, now) else m.password
    if (host_url, password) == (m.host_url, m.password):
        return event
    return replace(event, meeting=replace(m, host_url=host_url, password=password))
