"""The operator's surface on the web process: ``GET /metrics`` and the ``GET /status`` page.

``/metrics`` is open unless ``MEETSYNC_METRICS_TOKEN`` is set (then ``Authorization: Bearer``
with it). ``/status`` takes the read token: as ``Authorization: Bearer``, or typed once into
the page's form (``POST /status/login``), which sets a cookie holding an expiry and its HMAC
under the read token, never the token itself (a phone's browser cannot send a header, and a
``?token=`` would sit in browser history and proxy logs).

Figures are read at request time: Redis (the stream, summed over its partitions, and the stats
hash on the queue's Redis; the arq queue and each account's latest reconcile run ids on arq's)
and the mirror, read-only, on a thread.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from meetsync import metrics
from meetsync.providers import providers
from meetsync.providers.selftests import selftest_appointment_ids
from meetsync.queue import (
    JOB_QUEUE,
    STATS,
    LaneFigures,
    QueueClient,
    backlog,
    lane_figures,
    reconcile_runs_key,
)
from meetsync.settings import Settings
from meetsync.store import Store, mirror_exists, open_store
from meetsync.store import status as figures
from meetsync.store.subscribers import cursors as subscriber_cursors
from meetsync.webhooks.auth import bearer_matches, token_matches
from meetsync.webhooks.params import TooLarge, bounded_body, bounded_int
from meetsync.webhooks.receiver import Answer
from meetsync.webhooks.status_page import login_page, status_page

log = structlog.get_logger(__name__)

COOKIE = "meetsync_status"
SESSION_SECONDS = 12 * 3600
MAX_EXPIRY = 2**63 - 1  # a session cookie's expiry, Unix seconds: anything longer is forged
MAX_FORM_BYTES = 4096
RUNS_SHOWN = 5
Key = tuple[str, str]


@dataclass
class Overview:
    """Everything the status page shows; None where a source could not be read."""

    generated_at: float
    queue: dict[str, Any] | None = None
    counters: dict[str, int] = field(default_factory=dict)
    refetches: dict[Key, int] = field(default_factory=dict)
    lanes: dict[Key, LaneFigures] = field(default_factory=dict)
    run_ids: dict[Key, list[int]] = field(default_factory=dict)
    mirror: dict[str, Any] | None = None
    deliveries: dict[Key, dict[str, int]] = field(default_factory=dict)
    accounts: list[Key] = field(default_factory=list)
    refreshable: frozenset[str] = frozenset()
    # Why the mirror could not be read: "absent" (no file yet) or the error's type; None: read
    mirror_problem: str | None = None
    # Accounts whose reconciler is off, with what to set (no API credentials)
    reconciler_off: dict[Key, str] = field(default_factory=dict)
    # Deliveries refused for their signature, by provider and the account they were posted to
    # (a configured one), or UNKNOWN_ACCOUNT
    signature_refusals: dict[Key, int] = field(default_factory=dict)
    # each configured subscriber: its URL as shown, and its cursor's state (None: no worker
    # has started delivering to it yet, or the mirror could not be read)
    subscribers: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)


UNKNOWN_ACCOUNT = "unknown account"
"""Where a refused delivery counts when no configured account was named in its path: one
fixed bucket per provider (never a label made of a string the sender chose). Not a valid
account name (it has a space), so it cannot collide with one."""


def counted(known: frozenset[str], accounts: frozenset[Key] = frozenset(),
            ) -> Callable[[str, str | None, Answer], None]:
    """What counts each answer of the receiver (``meetsync_webhook_deliveries_total``), given
    the provider and account named in its path.

    A delivery no account verified (a wrong secret: the most common setup mistake) counts
    under the account its path named when that is one of ``accounts`` (the configured ones),
    else under ``UNKNOWN_ACCOUNT``."""

    def count(name: str, posted_to: str | None, answer: Answer) -> None:
        account = answer.account
        if account is None and name in known:
            account = posted_to if (name, posted_to) in accounts else UNKNOWN_ACCOUNT
        metrics.delivery(name if name in known else None, account, answer.status, answer.said)

    return count


def operator_routes(
    settings: Settings, redis: Redis, queue: QueueClient | None = None
) -> list[Route]:
    """The routes; ``queue`` is the event stream's Redis (``redis`` unless it has its own)."""
    stream = redis if queue is None else queue
    partitions = settings.queue_partitions
    read_token = settings.read_token or ""
    metrics_token = settings.metrics_token or ""
    db_path = settings.db_path
    configured = [a.key for a in settings.accounts if a.provider in providers()]

    async def metrics_endpoint(request: Request) -> Response:
        if metrics_token and not bearer_matches(request, metrics_token):
            return Response("missing or invalid bearer token\n", status_code=401,
                            headers={"WWW-Authenticate": "Bearer"}, media_type="text/plain")
        snapshot = metrics.Snapshot()
        queue = await _queue(redis, stream, partitions)
        snapshot.up["redis"] = queue is not None
        if queue is not None:
            snapshot.queue_depth = queue["depth"]
            snapshot.queue_oldest_age_seconds = queue["oldest_age_seconds"]
            snapshot.queue_pending = queue["pending"]
            snapshot.jobs_queued = queue["jobs"]
            try:  # labels from configuration only: the accounts configured
                snapshot.lanes = await lane_figures(redis, configured)
            except (RedisError, OSError) as exc:
                log.warning("status_redis_unavailable", error_type=type(exc).__name__)
        letters = await _read_mirror(db_path, figures.dead_letters_awaiting)
        snapshot.up["mirror"] = letters is not None
        snapshot.dead_letters_awaiting = letters
        body = await anyio.to_thread.run_sync(metrics.exposition, snapshot)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    def signed_in(request: Request) -> bool:
        if bearer_matches(request, read_token):
            return True
        return _session_valid(request.cookies.get(COOKIE, ""), read_token)

    async def status(request: Request) -> Response:
        if not signed_in(request):
            return HTMLResponse(login_page(), status_code=401,
                                headers={"WWW-Authenticate": "Bearer", **_NO_STORE})
        overview = await _overview(settings, redis, stream)
        return HTMLResponse(status_page(overview), headers=_NO_STORE)

    async def login(request: Request) -> Response:
        try:
            body = await bounded_body(request, MAX_FORM_BYTES)
        except TooLarge:
            body = b""  # no token in it: refused below
        given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
        if not token_matches(given, read_token):
            log.info("status_login_refused")  # never the value typed
            return HTMLResponse(login_page(failed=True), status_code=401, headers=_NO_STORE)
        response = RedirectResponse("/status", status_code=303)
        response.set_cookie(
            COOKIE, _session(read_token), max_age=SESSION_SECONDS, path="/status",
            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    return [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/status/login", login, methods=["POST"]),
    ]


_NO_STORE = {"Cache-Control": "no-store"}


def _sign(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"meetsync-status:{expires}".encode(),
                    hashlib.sha256).hexdigest()


def _session(token: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    return f"{expires}.{_sign(token, expires)}"


def _session_valid(cookie: str, token: str, now: float | None = None) -> bool:
    """Whether ``cookie`` is one ``_session`` made and still live; any other value (the
    client's to choose: any length, any byte) is simply not a session."""
    raw, _, mac = cookie.partition(".")
    expires = bounded_int(raw, 0, MAX_EXPIRY)
    if not (token and expires is not None and mac.isascii()):
        return False
    return (expires > (now or time.time())
            and hmac.compare_digest(mac, _sign(token, expires)))


async def _queue(redis: Redis, stream: QueueClient, partitions: int) -> dict[str, Any] | None:
    """The stream's depth, its oldest entry's age (by Redis's clock), what workers hold
    unacknowledged, and arq's waiting jobs; None when Redis does not answer."""
    try:
        waiting = await backlog(stream, partitions)
        # The clock of the node that dated the entries (one clock per server; a cluster's
        # nodes' agree to NTP's precision).
        seconds, micros = await stream.time()
        jobs = await redis.zcard(JOB_QUEUE)
    except (RedisError, OSError) as exc:
        log.warning("status_redis_unavailable", error_type=type(exc).__name__)
        return None
    age = 0.0
    if waiting.oldest_ms is not None:
        age = max(0.0, seconds + micros / 1e6 - waiting.oldest_ms / 1000)
    return {"depth": waiting.queued, "oldest_age_seconds": round(age, 3),
            "pending": waiting.pending, "jobs": int(jobs)}


async def _read_mirror(path: str, fn: Callable[[Store], Any],
                       problems: list[str] | None = None) -> Any:
    """``fn`` on a read-only connection of its own, on a thread; None without a mirror (then
    ``problems`` gets "absent", or the error's type when it could not be read)."""

    def run() -> Any:
        if not mirror_exists(path):
            if problems is not None:
                problems.append("absent")
            return None
        store = open_store(path, readonly=True)
        try:
            return fn(store)
        finally:
            store.close()

    try:
        return await anyio.to_thread.run_sync(run)
    except Exception as exc:
        log.warning("status_mirror_unavailable", error_type=type(exc).__name__)
        if problems is not None:
            problems.append(type(exc).__name__)
        return None


async def _overview(settings: Settings, redis: Redis, stream: QueueClient) -> Overview:
    known = providers()
    configured = [a.key for a in settings.accounts if a.provider in known]
    overview = Overview(
        generated_at=time.time(),
        refreshable=frozenset(name for name, p in known.items() if p.refreshable),
        deliveries=_deliveries(),
    )
    overview.queue = await _queue(redis, stream, settings.queue_partitions)
    if overview.queue is not None:
        try:
            await _redis_figures(redis, stream, configured, overview)
        except (RedisError, OSError) as exc:
            log.warning("status_redis_unavailable", error_type=type(exc).__name__)
    wanted = sorted({i for ids in overview.run_ids.values() for i in ids[:RUNS_SHOWN]})

    selftests = selftest_appointment_ids()

    def read(store: Store) -> dict[str, Any]:
        return {
            "credentials": figures.credential_freshness(store),
            "appointments": figures.appointment_counts(store, selftests),
            "dead_letters": figures.dead_letters_awaiting(store),
            "letters": store.dead_letters()[-10:],
            "runs": {run["id"]: run for run in figures.runs(store, wanted)},
            "recent_runs": store.runs(10),
            "subscribers": ({c["name"]: c for c in subscriber_cursors(store)}
                            if settings.subscribers else {}),
        }

    problems: list[str] = []
    overview.mirror = await _read_mirror(settings.db_path, read, problems)
    overview.mirror_problem = problems[0] if problems else None
    overview.reconciler_off = {
        a.key: missing for a in settings.accounts if a.provider in known
        if (missing := known[a.provider].missing_api(a)) is not None}
    overview.signature_refusals = {
        key: n for key, outcomes in overview.deliveries.items()
        if (n := outcomes.get("rejected_signature", 0))}
    seen = set(configured)
    if overview.mirror is not None:
        seen |= set(overview.mirror["appointments"]) | set(overview.mirror["dead_letters"])
    seen |= {key for key in overview.deliveries if key[1] != UNKNOWN_ACCOUNT}
    held = (overview.mirror or {}).get("subscribers", {})
    overview.subscribers = [(s.name, s.shown_url, held.get(s.name)) for s in settings.subscribers]
    overview.accounts = sorted(seen)
    return overview


async def _redis_figures(
    redis: Redis, stream: QueueClient, accounts: list[Key], overview: Overview
) -> None:
    raw = await stream.hgetall(STATS)  # type: ignore[misc]
    overview.counters = {k.decode(): int(v) for k, v in raw.items()}
    for provider, account in accounts:
        ids = await redis.lrange(reconcile_runs_key(provider, account), 0, RUNS_SHOWN - 1)  # type: ignore[misc]
        overview.run_ids[(provider, account)] = [int(i) for i in ids]
    # Each account's refetch lane (waiting and in flight), and refetch jobs an older release
    # left in arq's queue.
    overview.lanes = await lane_figures(redis, accounts)
    for key, lane in overview.lanes.items():
        overview.refetches[key] = lane.waiting + lane.in_flight
    async for member, _score in redis.zscan_iter(JOB_QUEUE, match="refetch:*"):
        parts: list[str] = bytes(member).decode().split(":", 3)
        if len(parts) < 4:
            continue  # a job queued before accounts: its provider and account are implied
        key = (parts[1], parts[2])
        overview.refetches[key] = overview.refetches.get(key, 0) + 1


def _deliveries() -> dict[Key, dict[str, int]]:
    """This process's delivery counts since it started, by provider/account and outcome."""
    found: dict[Key, dict[str, int]] = {}
    for family in metrics.DELIVERIES.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            key = (labels["provider"], labels["account"])
            outcomes = found.setdefault(key, {})
            outcomes[labels["outcome"]] = outcomes.get(labels["outcome"], 0) + int(sample.value)
    return found


__all__ = ["counted", "operator_routes"]
