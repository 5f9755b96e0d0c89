"""Prometheus metrics: every definition in one place, and the small helpers that record them.

Each process counts what it does itself in the default registry (the web process: deliveries
and reads; a worker: batches, reconcile runs, API calls and budgets; ``meetsync dev``: both).
The applier's series join it only in a process that applies (``applying``).
A worker serves its registry on ``MEETSYNC_WORKER_METRICS_PORT`` (``serve_worker_metrics``);
the web process serves it on ``GET /metrics`` with what only a scrape can know, computed then
from Redis and the mirror (``Snapshot``: queue depth, the oldest entry's age, dead letters
awaiting replay), so no gauge goes stale between scrapes and no collector blocks on I/O.

Labels are bounded: provider, configured account, outcome, HTTP status, drifted field. Never
an appointment, meeting or event id, never a credential (``tests/webhooks/test_metrics.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from meetsync.providers.http import RequestBudget

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "unknown"

# --- receiver ------------------------------------------------------------------------------
DELIVERIES = Counter(
    "meetsync_webhook_deliveries",
    "Webhook deliveries answered, by provider, verified account, outcome and HTTP status.",
    ["provider", "account", "outcome", "code"],
)
CLAMPED = Counter(
    "meetsync_events_clamped",
    "Events dated beyond receipt + MEETSYNC_CLOCK_SKEW_SECONDS, ordered at their receipt.",
)

# --- applier: exported only by a process that applies (``applying``) -----------------------
APPLY_BATCH_SIZE = Histogram(
    "meetsync_apply_batch_size",
    "Stream entries read per applier batch (one SQLite transaction).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
    registry=None,
)
APPLY_BATCH_SECONDS = Histogram(
    "meetsync_apply_batch_duration_seconds",
    "Time to apply one batch to the mirror (the SQLite transaction, lock waits included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
EVENTS = Counter(
    "meetsync_events",
    "Events the applier settled: applied, stale (older than the mirror) or duplicate.",
    ["result"],
    registry=None,
)
ACCOUNT_CONFLICTS = Counter(
    "meetsync_account_conflicts",
    "Events not applied: their appointment belongs to another account than the sender's.",
    ["provider"],
)
DEAD_LETTERS = Counter(
    "meetsync_dead_letters",
    "Events given up on after their last attempt, written to dead_letters.",
    registry=None,
)
STORE_BUSY = Counter(
    "meetsync_store_busy_waits",
    "Times the applier found the mirror locked past its busy timeout, or unable to write (disk"
    " full, I/O error, connection lost), and backed off without spending an attempt.",
    registry=None,
)
APPLY_SERIES: tuple[Collector, ...] = (
    APPLY_BATCH_SIZE, APPLY_BATCH_SECONDS, EVENTS, DEAD_LETTERS, STORE_BUSY)
_applying = threading.Lock()
_exported: list[Collector] = []


def applying() -> None:
    """This process applies events: export the applier's series (idempotent; ``Applier``
    calls it). The web process never applies, and a scrape of it must not show figures that
    are 0 only because another process (a worker) counts them; ``meetsync dev`` runs an
    applier in its web process, so its ``/metrics`` has them."""
    with _applying:
        if _exported:
            return
        for series in APPLY_SERIES:
            REGISTRY.register(series)
            _exported.append(series)

# --- reconciler and provider APIs ----------------------------------------------------------
RECONCILE_RUNS = Counter(
    "meetsync_reconcile_runs",
    "Reconcile runs finished, by provider, account and outcome (success, partial, failed).",
    ["provider", "account", "outcome"],
)
RECONCILE_DRIFT = Counter(
    "meetsync_reconcile_drift",
    "Drifted fields the reconciler found (field 'missing': an appointment the mirror lacked).",
    ["provider", "account", "field"],
)
RECONCILE_REPAIRED = Counter(
    "meetsync_reconcile_repaired",
    "Appointments a reconcile run repaired.",
    ["provider", "account"],
)
RECONCILE_SECONDS = Histogram(
    "meetsync_reconcile_duration_seconds",
    "How long a reconcile run took.",
    ["provider", "account"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
RECONCILE_LAST = Gauge(
    "meetsync_reconcile_last_run_timestamp_seconds",
    "When the last reconcile run with this outcome finished (Unix time).",
    ["provider", "account", "outcome"],
)
API_REQUESTS = Counter(
    "meetsync_provider_api_requests",
    "HTTP attempts to a provider's API (retries included), by status code or error "
    "('timeout', 'network_error'); code 429 is the provider rate-limiting us.",
    ["provider", "account", "code"],
)

# --- read API ------------------------------------------------------------------------------
HOST_URL_READS = Counter(
    "meetsync_read_host_url",
    "Meetings the read API served, by what became of the host link: served, expired "
    "(withheld: past its host_url_expires_at) or absent (none held, or not the current meeting).",
    ["provider", "outcome"],
)


# --- recording helpers ---------------------------------------------------------------------

_OUTCOMES = {200: "handshake", 400: "rejected_envelope", 401: "rejected_signature",
             404: "unknown_provider", 413: "too_large", 503: "unavailable"}
_ACCEPTED = {"queued": "queued", "fetch queued": "hint", "verify soon": "hint",
             "dropped: no API credentials": "hint", "ignored": "ignored"}


# --- subscribers (worker/subscribers.py): labelled by configured subscriber name only --------
SUBSCRIBER_SENT = Counter(
    "meetsync_subscriber_sent",
    "Changes a subscriber acknowledged (2xx), by configured subscriber.",
    ["subscriber"],
)
SUBSCRIBER_FAILED = Counter(
    "meetsync_subscriber_failed",
    "Delivery attempts that failed (no answer, timeout, non-2xx), by configured subscriber.",
    ["subscriber"],
)
SUBSCRIBER_LAG_SEQ = Gauge(
    "meetsync_subscriber_lag_seq",
    "Changes logged after the subscriber's cursor (what it has yet to get or skip).",
    ["subscriber"],
)
SUBSCRIBER_LAG_SECONDS = Gauge(
    "meetsync_subscriber_lag_seconds",
    "Age of the oldest change after the subscriber's cursor (0 when it is caught up).",
    ["subscriber"],
)
SUBSCRIBER_DISABLED = Gauge(
    "meetsync_subscriber_disabled",
    "1 while the subscriber is disabled (it answered 410 Gone), else 0.",
    ["subscriber"],
)


def subscriber_sent(name: str) -> None:
    SUBSCRIBER_SENT.labels(name).inc()


def subscriber_failed(name: str) -> None:
    SUBSCRIBER_FAILED.labels(name).inc()


def subscriber_state(name: str, *, disabled: bool) -> None:
    SUBSCRIBER_DISABLED.labels(name).set(1 if disabled else 0)


def subscriber_lag(name: str, changes: int, oldest_changed_at: str | None,
                   now: datetime | None = None) -> None:
    """The lag as the deliverer sees it when it reads the log: in changes, and in seconds."""
    SUBSCRIBER_LAG_SEQ.labels(name).set(changes)
    SUBSCRIBER_LAG_SECONDS.labels(name).set(lag_seconds(oldest_changed_at, now))


def lag_seconds(oldest_changed_at: str | None, now: datetime | None = None) -> float:
    """Seconds since ``oldest_changed_at`` (the mirror's ISO time); 0 when None."""
    if not oldest_changed_at:
        return 0.0
    try:
        then = datetime.fromisoformat(oldest_changed_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())


_delivery_counts: dict[tuple[str, str, int, str | None], Any] = {}


def delivery(provider: str | None, account: str | None, status: int, said: str | None) -> None:
    """Count one answered delivery; ``said`` is a 202's "status" (tells a 202 apart).

    Each label set's child is looked up once and kept (the labels are bounded, as above): one
    dict lookup per delivery instead of ``labels()``'s."""
    key = (provider or UNKNOWN, account or "", status, said)
    child = _delivery_counts.get(key)
    if child is None:
        outcome = (_ACCEPTED.get(said, "accepted") if said is not None else "accepted"
                   ) if status == 202 else _OUTCOMES.get(status, "other")
        child = _delivery_counts[key] = DELIVERIES.labels(key[0], key[1], outcome, str(status))
    child.inc()


class _Round(Protocol):
    read: int
    dead_lettered: int
    clamped: int

    @property
    def result(self) -> Any: ...


def applied_round(round_: _Round, seconds: float) -> None:
    """One applier batch: its size, time and what became of its events."""
    APPLY_BATCH_SIZE.observe(round_.read)
    APPLY_BATCH_SECONDS.observe(seconds)
    result = round_.result
    EVENTS.labels("applied").inc(result.applied)
    EVENTS.labels("stale").inc(result.stale)
    EVENTS.labels("duplicate").inc(result.duplicates)
    if round_.clamped:
        CLAMPED.inc(round_.clamped)
    if round_.dead_lettered:
        DEAD_LETTERS.inc(round_.dead_lettered)
    for conflict in result.account_conflicts:
        ACCOUNT_CONFLICTS.labels(conflict.provider).inc()


def reconcile_run(
    provider: str, account: str, outcome: str, drift: Mapping[str, int], repaired: int,
    seconds: float,
) -> None:
    RECONCILE_RUNS.labels(provider, account, outcome).inc()
    for name, n in drift.items():
        RECONCILE_DRIFT.labels(provider, account, name).inc(n)
    RECONCILE_REPAIRED.labels(provider, account).inc(repaired)
    RECONCILE_SECONDS.labels(provider, account).observe(seconds)
    RECONCILE_LAST.labels(provider, account, outcome).set_to_current_time()


def api_attempt(api: object, code: str) -> None:
    """One HTTP attempt by a provider client (a ``JsonApi`` with ``provider`` and ``account``)."""
    API_REQUESTS.labels(
        str(getattr(api, "provider", UNKNOWN)), str(getattr(api, "account", UNKNOWN)), code
    ).inc()


def host_url_read(provider: str, served: Mapping[str, Any]) -> None:
    """A meeting the read API answered with: was its host link served or withheld?"""
    if served.get("host_url"):
        outcome = "served"
    else:
        expires = served.get("host_url_expires_at")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        outcome = "expired" if isinstance(expires, str) and expires <= now else "absent"
    HOST_URL_READS.labels(provider, outcome).inc()


# --- request budgets (a worker's) ----------------------------------------------------------

class _Budgets(Collector):
    """Each watched ``RequestBudget``: grants left in its window, its limit, time throttled.

    Read at scrape from the metrics thread: ``RequestBudget.available`` copies its log first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, str], RequestBudget] = {}

    def watch(self, provider: str, account: str, budget: RequestBudget) -> None:
        with self._lock:
            self._budgets[(provider, account)] = budget

    def collect(self) -> Iterable[Metric]:
        labels = ["provider", "account"]
        available = GaugeMetricFamily(
            "meetsync_provider_budget_available",
            "Requests an account may still make in its provider's rate-limit window now.",
            labels=labels)
        limit = GaugeMetricFamily(
            "meetsync_provider_budget_limit",
            "Requests an account may make per rate-limit window (its configured budget).",
            labels=labels)
        throttled = CounterMetricFamily(
            "meetsync_provider_budget_throttled_seconds",
            "Seconds callers waited for the account's budget (concurrent waits add up).",
            labels=labels)
        with self._lock:
            budgets = sorted(self._budgets.items())
        for (provider, account), budget in budgets:
            available.add_metric([provider, account], budget.available())
            limit.add_metric([provider, account], budget.per_minute)
            throttled.add_metric([provider, account], budget.throttled_seconds)
        yield from (available, limit, throttled)


BUDGETS = _Budgets()
REGISTRY.register(BUDGETS)


def watch_budget(provider: str, account: str, budget: RequestBudget) -> None:
    """Export ``budget`` as the account's (the latest one given wins)."""
    BUDGETS.watch(provider, account, budget)


# --- what only a scrape knows (the web process) --------------------------------------------

@dataclass
class Snapshot:
    """Figures read from Redis and the mirror for one scrape; None: could not be read."""

    queue_depth: int | None = None
    queue_oldest_age_seconds: float | None = None
    queue_pending: int | None = None
    jobs_queued: int | None = None
    dead_letters_awaiting: Mapping[tuple[str, str], int] | None = None
    # Each configured account's refetch lane (worker/lanes.py's LaneFigures), from Redis.
    lanes: Mapping[tuple[str, str], Any] | None = None
    up: dict[str, bool] = field(default_factory=dict)

    def families(self) -> list[Metric]:
        found: list[Metric] = []

        def gauge(name: str, text: str, value: float | None) -> None:
            if value is not None:
                found.append(GaugeMetricFamily(name, text, value=value))

        gauge("meetsync_queue_depth", "Events queued on the Redis stream, not yet applied.",
              self.queue_depth)
        gauge("meetsync_queue_oldest_age_seconds",
              "Age of the oldest event on the stream (0 when it is empty).",
              self.queue_oldest_age_seconds)
        gauge("meetsync_queue_pending",
              "Stream entries read by a worker but not yet acknowledged.", self.queue_pending)
        gauge("meetsync_jobs_queued", "arq jobs (refetches) waiting to run.", self.jobs_queued)
        if self.dead_letters_awaiting is not None:
            letters = GaugeMetricFamily(
                "meetsync_dead_letters_awaiting_replay",
                "Dead letters not yet replayed, by the provider and account their event named.",
                labels=["provider", "account"])
            for (provider, account), n in sorted(self.dead_letters_awaiting.items()):
                letters.add_metric([provider, account], n)
            found.append(letters)
        if self.lanes is not None:
            found += _lane_families(self.lanes)
        up = GaugeMetricFamily("meetsync_scrape_source_up",
                               "Whether the scrape could read a source (redis, mirror).",
                               labels=["source"])
        for source, ok in sorted(self.up.items()):
            up.add_metric([source], 1 if ok else 0)
        found.append(up)
        return found


def _lane_families(lanes: Mapping[tuple[str, str], Any]) -> list[Metric]:
    """Hints by outcome (counted in Redis by every receiver) and each lane's depth."""
    labels = ["provider", "account"]
    hints = CounterMetricFamily(
        "meetsync_hints",
        "Hints (fetch requests from unsigned or partial deliveries) by outcome: accepted "
        "(queued in the account's refetch lane), folded (one waits already), collapsed (the "
        "lane was full: the account's next sweep runs at the next cron tick) and dropped (the "
        "account has no API credentials).", labels=[*labels, "outcome"])
    depth = GaugeMetricFamily(
        "meetsync_refetch_lane_depth",
        "Refetch requests waiting or in flight in the account's lane (bounded: its budget "
        "times MEETSYNC_REFETCH_HORIZON_SECONDS).", labels=labels)
    verify = GaugeMetricFamily(
        "meetsync_refetch_lane_verify_soon",
        "1 when hints collapsed and the account's next sweep is due at the next cron tick.",
        labels=labels)
    for (provider, account), lane in sorted(lanes.items()):
        for outcome, n in sorted(lane.counts.items()):
            hints.add_metric([provider, account, outcome], n)
        depth.add_metric([provider, account], lane.waiting + lane.in_flight)
        verify.add_metric([provider, account], 1 if lane.verify_soon else 0)
    return [hints, depth, verify]


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(snapshot: Snapshot | None = None) -> bytes:
    """The process's metrics in the text format, with ``snapshot``'s figures after them."""
    text = generate_latest(REGISTRY)
    if snapshot is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_Fixed(snapshot.families()))
        text += generate_latest(scrape)
    return text


def serve_worker_metrics(port: int | None, addr: str = "0.0.0.0") -> Callable[[], None]:  # noqa: S104
    """Serve this process's metrics over HTTP on ``port`` (a thread); returns how to stop it.
    ``None``: off (returns a no-op)."""
    if port is None:
        return lambda: None
    try:
        server, thread = _start_http_server(port, addr=addr)
    except OSError as exc:
        # Applying events matters more than being watched: say so loudly and carry on.
        log.error("worker_metrics_unavailable", port=port, error=exc.strerror or str(exc),
                  fix="set MEETSYNC_WORKER_METRICS_PORT to a free port (one per worker)")
        return lambda: None
    log.info("worker_metrics_serving", port=port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


__all__ = [
    "CONTENT_TYPE", "Snapshot", "api_attempt", "applied_round", "applying", "delivery",
    "exposition", "host_url_read", "lag_seconds", "reconcile_run", "serve_worker_metrics",
    "subscriber_failed", "subscriber_lag", "subscriber_sent", "subscriber_state", "watch_budget",
]
