"""The arq worker: the applier draining the event stream, the refetch lanes, and the crons.

arq runs the scheduled work (credential purge, start-URL refresh, inbox prune, the reconciler);
the applier runs beside it in the same process as a long-lived task, because draining a stream
in batches is what makes SQLite fast (one commit per batch, not per event). Refetches are not
arq jobs: each configured account with API credentials has its own lane (``worker/lanes.py``)
served by a task of its own at its budget's pace, so a flood of hints for one account holds
no arq slot, and neither other accounts' refetches nor the crons wait behind it. The arq
function ``refetch_appointment`` stays registered so jobs queued by an older release drain.

arq's Redis (``REDIS_URL``) must be a single server (or a primary with replicas), not a cluster:
arq queues and claims jobs in transactions over several keys that a cluster would refuse
(CROSSSLOT). The event stream may live on a cluster of its own (``MEETSYNC_QUEUE_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import structlog
from arq import Retry, cron, func
from arq.connections import ArqRedis, RedisSettings

from meetsync.errors import StoreBusy
from meetsync.events import Event, gone, to_micros
from meetsync.metrics import serve_worker_metrics, watch_budget
from meetsync.providers import (
    LEGACY_PROVIDER,
    EnvelopeError,
    Provider,
    ProviderApi,
    lane_bounds,
    providers,
)
from meetsync.providers.http import PermanentApiError, RequestBudget, RetryableApiError
from meetsync.queue import (
    DEFAULT_BOUND,
    JOB_QUEUE,
    REFETCH_JOB,
    queue_client,
    remember_run,
    request_refetch,
)
from meetsync.settings import Account, Settings
from meetsync.store import Store, open_store, postgres
from meetsync.worker.applier import Applier, StoreThread, consumer_name
from meetsync.worker.lanes import LEASE_SECONDS, Lane, RetryLater, done, take, take_verify_mark
from meetsync.worker.reconciler import Reconciler
from meetsync.worker.subscribers import Deliveries
from meetsync.worker.writes import SnapshotWriter

log = structlog.get_logger(__name__)

TIES_LOGGED = 20  # appointment ids named per tie_unresolved line
# The event stream's own client (MEETSYNC_QUEUE_URL): reads block for a second at most.
QUEUE_CONNECT_TIMEOUT_SECONDS = 5.0
QUEUE_SOCKET_TIMEOUT_SECONDS = 10.0

AccountKey = tuple[str, str]  # (provider, account)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConnectedAccount:
    """One configured account of one provider, as the worker talks to it."""

    provider: Provider
    account: Account
    budget: RequestBudget  # the token's rate limit, shared by every caller in this process
    api: ProviderApi  # refetches' client (a reconcile run makes its own, on the same budget)

    def client(self) -> ProviderApi:
        """A fresh client on the shared budget: its counters are one run's API calls."""
        api = self.provider.api(self.account, self.budget)
        assert api is not None
        return api


@dataclass
class WorkerContext:
    """What every job gets, typed (arq's ``ctx`` is an untyped dict)."""

    settings: Settings
    redis: ArqRedis
    store: StoreThread
    applier: Applier
    applier_task: asyncio.Task[None]
    connections: dict[AccountKey, ConnectedAccount]
    # "now" for refetch stamps and the refresh cron: the wall clock, or a simulated one in
    # tests and the freshness bench (match the store's clock, or expiries drift from it)
    clock: Callable[[], datetime] = field(default=_utc_now)
    # pushes the change log to the configured subscribers (None: none configured)
    deliveries: Deliveries | None = None
    deliveries_store: StoreThread | None = None
    # Fetched snapshots' write path (worker/writes.py); None: the store alone, no stream.
    writer: SnapshotWriter | None = None
    lanes: list[Lane] = field(default_factory=list)
    lane_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def of(cls, ctx: dict[str, Any]) -> WorkerContext:
        state: WorkerContext = ctx["meetsync"]
        return state

    def snapshots(self) -> SnapshotWriter:
        if self.writer is None:
            self.writer = SnapshotWriter(self.store)
        return self.writer

    def bound(self, provider: str, account: str) -> int:
        """The bound of the account's refetch lane (``worker/lanes.py``)."""
        return lane_bounds(self.settings).get((provider, account), DEFAULT_BOUND)


def connect(settings: Settings, *, quiet: bool = False) -> dict[AccountKey, ConnectedAccount]:
    """A client (and a budget) for every configured account that has API credentials."""
    found: dict[AccountKey, ConnectedAccount] = {}
    for name, provider in providers().items():
        for account in settings.accounts_of(name):
            budget = provider.budget(account)
            watch_budget(name, account.name, budget)
            api = provider.api(account, budget)
            if api is not None:
                found[account.key] = ConnectedAccount(provider, account, budget, api)
            elif not quiet:
                log.warning("reconciler_disabled", provider=name, account=account.name,
                            fix=f"set {provider.missing_api(account) or 'its API credentials'}")
    return found


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    redis: ArqRedis = ctx["redis"]
    store = StoreThread(lambda: open_store(settings.db_path))
    connections = connect(settings)
    bounds = lane_bounds(settings)

    async def refetch_ties(ties: set[tuple[str, str]]) -> None:
        # Only accounts with an API client can be refetched; the rest wait for a newer event.
        unresolved: dict[AccountKey, list[str]] = {}
        held = await store.run(lambda s: {tie: s.appointment(tie[1], provider=tie[0])
                                          for tie in ties})
        for provider, appointment_id in sorted(ties):
            row = held[(provider, appointment_id)]
            account = str(row.get("account") or "default") if row else "default"
            if (provider, account) in connections:
                await request_refetch(redis, provider, account, appointment_id,
                                      bound=bounds.get((provider, account), DEFAULT_BOUND))
            else:
                unresolved.setdefault((provider, account), []).append(appointment_id)
        for (provider, account), appointment_ids in unresolved.items():
            log.warning(
                "tie_unresolved", provider=provider, account=account, count=len(appointment_ids),
                appointments=appointment_ids[:TIES_LOGGED],
                fix=f"set {_missing_api(settings, provider, account)} so the worker can refetch"
                " these appointments and settle which of two same-instant snapshots is current;"
                " until then the next event for each settles it",
            )

    # Without MEETSYNC_QUEUE_URL the stream shares arq's Redis, and its connections.
    queue = redis if settings.queue_url is None else queue_client(
        settings.queue_url, socket_connect_timeout=QUEUE_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=QUEUE_SOCKET_TIMEOUT_SECONDS)
    applier = Applier(
        queue, store, partitions=settings.queue_partitions, on_ties=refetch_ties,
        claim_idle_ms=settings.claim_idle_ms, clock_skew_seconds=settings.clock_skew_seconds,
        batch_size=settings.batch_size,
    )
    await applier.ensure_group()
    task = asyncio.create_task(applier.run(), name="meetsync-applier")
    state = WorkerContext(settings, redis, store, applier, task, connections,
                          writer=SnapshotWriter(store, queue,
                                                partitions=settings.queue_partitions))
    ctx["meetsync"] = state
    if settings.subscribers:
        # A connection of their own: the applier's batches never queue behind them, nor
        # they behind a batch.
        state.deliveries_store = StoreThread(lambda: open_store(settings.db_path))
        state.deliveries = Deliveries(
            settings, redis, state.deliveries_store,
            refreshable=frozenset(n for n, p in providers().items() if p.refreshable))
    lease = float(ctx.get("lane_lease_seconds", LEASE_SECONDS))
    for (provider, account), connection in sorted(connections.items()):
        lane = Lane(redis, provider, account, _lane_fetch(state, provider, account),
                          ready=_ready(connection.budget), lease_seconds=lease)
        state.lanes.append(lane)
        state.lane_tasks.append(asyncio.create_task(
            lane.run(), name=f"meetsync-lane:{provider}:{account}"))
    log.info("worker_started", db=postgres.shown(settings.db_path),
             accounts=[f"{p}/{a}" for p, a in sorted(connections)])


def _ready(budget: RequestBudget) -> Callable[[], float]:
    """Seconds until ``budget`` can grant a request (0: now), roughly: a lane takes its next
    request only then, so what it leases is fetched at once."""
    return lambda: 0.0 if budget.available() > 0 else budget.window / budget.per_minute


def _lane_fetch(
    state: WorkerContext, provider: str, account: str
) -> Callable[[str], Awaitable[str]]:
    async def fetch(appointment_id: str) -> str:
        # The stamp makes each fetch a new event, or the inbox drops it as a duplicate.
        event_id = f"refetch:{provider}:{account}:{appointment_id}:{to_micros(state.clock())}"
        try:
            return await refetch_one(state, provider, account, appointment_id, event_id)
        except RetryableApiError as exc:
            raise RetryLater(exc.retry_after or 5) from exc

    return fetch


def _missing_api(settings: Settings, provider: str, account: str) -> str:
    configured = settings.account(provider, account)
    known = providers().get(provider)
    if configured is None or known is None:
        return f"up a {provider} account named {account!r} with API credentials"
    return known.missing_api(configured) or "its API credentials"


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the applier and close the store; safe to call twice."""
    state = ctx.pop("meetsync", None)
    if state is None:
        return
    for lane in state.lanes:
        lane.stop()
    if state.lane_tasks:
        _, late = await asyncio.wait(state.lane_tasks, timeout=5)
        for task in late:  # mid-fetch: its lease puts the request back for another worker
            task.cancel()
        if late:
            await asyncio.wait(late)
    state.applier.stop()
    if state.deliveries is not None:
        await state.deliveries.stop()
    if state.deliveries_store is not None:
        state.deliveries_store.close()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await asyncio.wait_for(state.applier_task, timeout=5)
        except TimeoutError:
            state.applier_task.cancel()
    for connection in state.connections.values():
        await connection.api.aclose()
    if state.applier.redis is not state.redis:
        await state.applier.redis.aclose()
    state.store.close()
    log.info("worker_stopped")


def cron_key(name: str) -> str:
    """The Redis key a run of the periodic task ``name`` is claimed under (its value: the
    claiming consumer). Whoever holds it holds the task: an operator may, to pause it."""
    return f"meetsync:cron:{name}"


def reconcile_task(provider: str, account: str) -> str:
    """The periodic task name of one account's sweeps."""
    return f"reconcile:{provider}:{account}"


async def claim(redis: ArqRedis, name: str, seconds: float) -> bool:
    """Whether this worker runs the periodic task ``name`` now: the first of all the workers
    sharing this Redis to ask within ``seconds`` does (``SET NX`` with an expiry), so each
    cron's work is done once per interval, not once per worker."""
    return bool(await redis.set(cron_key(name), consumer_name(), nx=True,
                                px=max(1, int(seconds * 1000))))


P = ParamSpec("P")
T = TypeVar("T")


def outage_waits(job: Callable[P, Coroutine[Any, Any, T]]
                 ) -> Callable[P, Coroutine[Any, Any, T | None]]:
    """A periodic job that meets the mirror unavailable (locked past its timeout, PostgreSQL
    restarting, a full disk: ``StoreBusy``) logs a warning and returns None: its next run
    does the work. A traceback is for a bug, not for an outage the worker rides out."""

    @functools.wraps(job)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return await job(*args, **kwargs)
        except StoreBusy as exc:
            log.warning("periodic_job_skipped", job=job.__name__,
                        error=(str(exc).splitlines() or [type(exc).__name__])[0][:200],
                        retry="at its next run")
            return None

    return run


@outage_waits
async def purge_credentials(ctx: dict[str, Any]) -> int:
    """Clear every host_url and password past the expiry its provider gave it."""
    state = WorkerContext.of(ctx)
    if not await claim(state.redis, "purge_credentials", 50):
        return 0
    purged = await state.store.run(lambda store: store.purge_expired_credentials())
    if purged:
        log.info("credentials_purged", meetings=purged)
    return purged


REFRESH_BATCH = 1000  # refetches queued per account per run, soonest meetings first


@outage_waits
async def refresh_credentials(
    ctx: dict[str, Any], *, now: datetime | None = None
) -> dict[str, int]:
    """Queue refetches of the meetings whose renewable host_url (``Provider.refreshable``) is
    missing or dies within the margin, for meetings starting within the window or in progress.

    A refetch waiting already is not queued twice; the budget serves refetches before sweeps.
    """
    state = WorkerContext.of(ctx)
    if now is None and not await claim(state.redis, "refresh_credentials", 50):
        return {}
    settings = state.settings
    moment = now or state.clock()
    starting_before = moment + timedelta(seconds=settings.refresh_window_seconds)
    expiring_before = moment + timedelta(seconds=settings.refresh_margin_seconds)
    queued: dict[str, int] = {}
    for (provider, account), connection in sorted(state.connections.items()):
        if not connection.provider.refreshable:
            continue

        def due_of(store: Store, provider: str = provider, account: str = account) -> list[str]:
            return store.credentials_due(
                provider=provider, account=account, now=moment, starting_before=starting_before,
                expiring_before=expiring_before, limit=REFRESH_BATCH)

        due = await state.store.run(due_of)
        added = 0
        bound = state.bound(provider, account)
        for appointment_id in due:
            added += await request_refetch(state.redis, provider, account, appointment_id,
                                           bound=bound)
        queued[f"{provider}/{account}"] = added
        if due:
            log.info("credentials_refresh_queued", provider=provider, account=account,
                     due=len(due), queued=added)
    return queued


@outage_waits
async def prune_inbox(ctx: dict[str, Any]) -> int:
    """Forget event ids applied over 30 days ago: the inbox would otherwise grow forever."""
    state = WorkerContext.of(ctx)
    if not await claim(state.redis, "prune_inbox", 3000):
        return 0
    pruned = await state.store.run(lambda store: store.prune_inbox())
    if pruned:
        log.info("inbox_pruned", events=pruned)
    return pruned


async def refetch(
    api: ProviderApi,
    appointment_id: str,
    event_id: str,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Event:
    """The provider's current word on one appointment, as an event (unknown to it: deleted).

    Stamped before the request is sent: a webhook for a change made while it is in flight is
    newer and wins. A deleted one says nothing of times: the mirror keeps those it knew, so
    its credentials still expire and get purged.
    """
    asked_at = to_micros(clock())
    event = await api.fetch(
        appointment_id, event_id=event_id, type="refetch", priority="refetch", clock=clock)
    if event is None:
        return gone(event_id, api.provider, appointment_id, asked_at, type="refetch.gone",
                    account=api.account)
    return event


async def refetch_appointment(ctx: dict[str, Any], *job: str) -> str:
    """An arq job queued by a release before lanes: run it as a lane would.

    ``job`` is ``(provider, account, appointment id)``; a job queued by a release before
    several providers is ``(appointment id,)``, the one account of the first provider.
    """
    state = WorkerContext.of(ctx)
    provider, account, appointment_id = (
        (LEGACY_PROVIDER, "default", *job) if len(job) == 1 else job)
    # The job id names the appointment and is reused by every later refetch of it (one waits
    # at a time): the stamp makes each fetch a new event, or the inbox drops it as a duplicate.
    event_id = f"refetch:{ctx['job_id']}:{ctx['job_try']}:{to_micros(state.clock())}"
    try:
        return await refetch_one(state, provider, account, appointment_id, event_id)
    except RetryableApiError as exc:
        raise Retry(defer=exc.retry_after or 5 * ctx["job_try"]) from exc


async def refetch_one(
    state: WorkerContext, provider: str, account: str, appointment_id: str, event_id: str
) -> str:
    """Load one appointment from its account's API and write it through the one write path
    for fetched snapshots (``SnapshotWriter``): ``applied``, ``unknown``, ``failed...`` (the
    API refused, or the snapshot failed on its own and went to the applier), or ``skipped``.
    Raises ``RetryableApiError`` when the provider asks us to wait.

    An appointment is fetched from the account that owns it, whichever account's request
    asked: another account's answer would not be applied (store/apply.py)."""
    owners = await state.store.run(lambda store: store.owners([appointment_id],
                                                              provider=provider))
    account = owners.get(appointment_id, account)
    connection = state.connections.get((provider, account))
    if connection is None:
        return f"skipped: no API credentials for {provider} account {account}"
    held = await state.store.run(lambda store: store.appointment(appointment_id,
                                                                provider=provider))
    try:
        event = await refetch(connection.api, appointment_id, event_id, clock=state.clock)
    except (PermanentApiError, EnvelopeError) as exc:
        log.error("refetch_failed", provider=provider, account=account,
                  appointment_id=appointment_id, error=str(exc))
        return "failed"
    if held is None and event.type == "refetch.gone":
        # Unknown to the mirror and to the provider: nothing to write. (A forged hint for a
        # made-up id costs one fetch, and leaves no row behind.)
        return "unknown"
    _, failures = await state.snapshots().write([event])
    if failures:
        return "failed: handed to the applier"
    return "applied"


async def drain_lanes(state: WorkerContext) -> list[tuple[str, str, str]]:
    """Fetch every request waiting in every lane once, now, in each lane's order (burst mode
    for tests, the bench and tools): ``(provider, appointment id, outcome)`` each."""
    ran: list[tuple[str, str, str]] = []
    for provider, account in sorted(state.connections):
        fetch = _lane_fetch(state, provider, account)
        while (appointment_id := await take(state.redis, provider, account)) is not None:
            ran.append((provider, appointment_id, await fetch(appointment_id)))
            await done(state.redis, provider, account, appointment_id)
    return ran


def sweep_intervals(settings: Settings) -> dict[AccountKey, int]:
    """Seconds between sweeps of each account: its provider's own pace (a poll-only provider),
    else ``RECONCILE_INTERVAL_SECONDS``."""
    known = providers()
    return {
        account.key: known[account.provider].poll_interval(account)
        or settings.reconcile_interval_seconds
        for account in settings.accounts if account.provider in known
    }


def _tick(settings: Settings) -> int:
    """How often the reconcile cron fires: as often as the most frequent account needs."""
    return min(sweep_intervals(settings).values(), default=settings.reconcile_interval_seconds)


async def reconcile(ctx: dict[str, Any]) -> dict[str, Any]:
    """A reconcile run for each account with API credentials whose interval has passed, or
    whose refetch lane asked for one ("verify soon": hints collapsed past its bound); the
    accounts side by side, each on its own budget, so one slow account (its budget spent on a
    flood of refetches) delays no other's sweep. The cron fires at the shortest interval;
    across workers, each account is swept once per interval (``claim``)."""
    state = WorkerContext.of(ctx)
    if not state.connections:
        return {"outcome": "skipped"}
    intervals = sweep_intervals(state.settings)
    slack = _tick(state.settings) / 10  # cron firings jitter; a sweep is never due twice a tick

    async def sweep(key: AccountKey, connection: ConnectedAccount) -> dict[str, Any] | None:
        provider, account = key
        interval = intervals.get(key, state.settings.reconcile_interval_seconds)
        task = reconcile_task(provider, account)
        if await take_verify_mark(state.redis, provider, account):
            # Asked for now: this worker sweeps, and the interval starts again from here.
            await state.redis.set(cron_key(task), consumer_name(),
                                  px=max(1, int((interval - slack) * 1000)))
            log.info("reconcile_verify_soon", provider=provider, account=account)
        elif not await claim(state.redis, task, interval - slack):
            return None
        client = connection.client()
        try:
            report = await Reconciler(client, state.store, horizon=connection.provider.horizon,
                                      writer=state.snapshots()).run()
        finally:
            await client.aclose()
        await remember_run(state.redis, provider, account, report.run_id)
        return report.summary()

    accounts = sorted(state.connections.items())
    done = await asyncio.gather(*(sweep(key, connection) for key, connection in accounts))
    return {f"{p}/{a}": summary
            for ((p, a), _), summary in zip(accounts, done, strict=True) if summary is not None}


def _every(seconds: int) -> dict[str, Any]:
    """arq cron fields firing about every ``seconds`` (arq schedules by clock fields)."""
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    minutes = max(1, seconds // 60)
    if minutes < 60:
        return {"minute": set(range(0, 60, minutes)), "second": 0}
    return {"hour": set(range(0, 24, max(1, minutes // 60))), "minute": 0, "second": 0}


async def run(settings: Settings) -> None:
    """One worker until a signal stops it; a lost Redis connection propagates to the caller."""
    from arq.worker import create_worker

    worker = create_worker(worker_settings(settings))
    stop_metrics = serve_worker_metrics(settings.worker_metrics_port)
    try:
        await worker.async_run()
    except asyncio.CancelledError:  # SIGINT/SIGTERM: arq cancels its main task
        pass
    finally:
        try:
            await worker.close()
        except (Exception, asyncio.CancelledError) as exc:
            # Redis gone: close() can't clear its health key. Or a job the signal cancelled
            # between two of arq's own steps: close() gathers it and re-raises its
            # CancelledError before our shutdown ran.
            log.warning("worker_close_incomplete", error_type=type(exc).__name__)
            await shutdown(worker.ctx)
        finally:
            stop_metrics()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """arq settings; poll fast and read many jobs per poll (a default worker tops at ~200/s).
    Only the crons and refetch jobs of an older release run in arq's slots (lanes: above)."""
    return {
        "functions": [func(refetch_appointment, name=REFETCH_JOB, keep_result=0)],
        "cron_jobs": [
            cron(purge_credentials, second=0, run_at_startup=True),
            cron(refresh_credentials, second=30, run_at_startup=True),
            cron(prune_inbox, minute=17, second=0),
            cron(reconcile, **_every(_tick(settings)), timeout=3600),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.require_redis()),
        "ctx": {"settings": settings},
        "poll_delay": 0.05,
        "queue_read_limit": 500,
        "max_jobs": 20,
        "job_timeout": 600,
        "keep_result": 60,
        "queue_name": JOB_QUEUE,
        "max_tries": 5,
    }
