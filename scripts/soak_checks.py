"""The soak's checks that take more than a count (``scripts/soak.py`` runs them).

- ``in_order_check``: the mirror against a second one, built by applying the same events one at
  a time in ``(occurred_at, id)`` order;
- ``CronWatch``: how often the workers' periodic tasks were claimed;
- ``warnings_by_event``: the stack log's warnings and errors, by event name.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from meetsync.events import Event, iso_utc
from meetsync.providers import webhook_providers
from meetsync.providers.keys import settings_from_env
from meetsync.providers.savvycal.simulator import Delivery
from meetsync.store import Store, open_store
from meetsync.worker.main import cron_key, reconcile_task

CRONS = ("purge_credentials", "refresh_credentials", "reconcile")
HOLDER = "soak"  # the reconcile claim's value while the soak holds it
RECONCILE_KEY = cron_key(reconcile_task("savvycal", "default"))
# Compared with the in-order mirror: every column but when the row was last written.
TABLES = {
    "appointments": ("provider", "id"),
    "meetings": ("provider", "id"),
    "participants": ("provider", "appointment_id", "id"),
    "occurrences": ("provider", "appointment_id", "id"),
}
BOOKKEEPING = frozenset({"updated_at"})
CREDENTIALS = {"host_url": "host_url_expires_at", "password": "password_expires_at"}


def read_mirror(db: str) -> dict[str, Any]:
    """The inbox (how each event was ordered) and its outcomes, the dead letters, and every
    row the in-order comparison looks at."""
    with open_store(db, readonly=True) as store:
        inbox = {row[0]: (row[1], row[2], row[3]) for row in store.conn.execute(
            "SELECT id, appointment_id, occurred_at, claimed_at FROM events")}
        outcomes = dict(store.conn.execute("SELECT outcome, count(*) FROM events GROUP BY 1"))
        dead_letters = len(store.dead_letters(include_replayed=True))
        rows = {table: _rows(store, table) for table in TABLES}
    return {"inbox": inbox, "outcomes": outcomes, "dead_letters": dead_letters, "rows": rows}


def _rows(store: Store, table: str) -> list[dict[str, Any]]:
    cur = store.conn.execute(f"SELECT * FROM {table}")  # noqa: S608 (a constant name)
    names = [column[0] for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def in_order_check(
    deliveries: list[Delivery], mirror: dict[str, Any], env: dict[str, str], path: Path,
    now: datetime,
) -> dict[str, Any]:
    """Apply the events the mirror's inbox holds, one at a time in ``(occurred_at, id)``
    order, to a fresh SQLite mirror at ``path``; compare its rows with ``mirror``'s."""
    started = time.monotonic()
    hooks = webhook_providers(settings_from_env(env))["savvycal"]  # the receiver's parser
    bodies = {d.event_id: d.body for d in deliveries}
    events: list[Event] = []
    disagreeing = clamped = 0
    not_webhooks: set[str] = set()  # appointments a refetch wrote: not a function of webhooks
    for event_id, (appointment_id, occurred_at, claimed_at) in mirror["inbox"].items():
        body = bodies.get(event_id)
        if body is None:
            not_webhooks.add(appointment_id)
            continue
        event = hooks.parse(body, "default")
        assert isinstance(event, Event)
        if claimed_at is None:
            disagreeing += event.occurred_at != occurred_at
        else:  # re-dated to its receipt (events.received): ordered where the receiver put it
            clamped += 1
            disagreeing += event.occurred_at != claimed_at
            event = replace(event, occurred_at=occurred_at, received_at=occurred_at,
                            claimed_at=claimed_at)
        events.append(event)
    events = [e for e in events if e.appointment_id not in not_webhooks]
    events.sort(key=lambda e: (e.occurred_at, e.id))
    path.unlink(missing_ok=True)
    failures = 0
    with open_store(path, clock=lambda: now) as reference:
        for event in events:
            failures += len(reference.apply([event])[1])
        expected = {table: _rows(reference, table) for table in TABLES}
    mismatches: Counter[str] = Counter()
    columns: Counter[str] = Counter()
    examples: list[str] = []
    compared = 0
    at = iso_utc(now)
    for table, key in TABLES.items():
        appointment = "id" if table == "appointments" else "appointment_id"
        sides = [
            {tuple(row[k] for k in key): _normalized(row, at) for row in rows
             if row[appointment] not in not_webhooks}
            for rows in (mirror["rows"][table], expected[table])
        ]
        found, wanted = sides
        for row_key in sorted(found.keys() | wanted.keys()):
            compared += 1
            have, want = found.get(row_key), wanted.get(row_key)
            if have == want:
                continue
            mismatches[table] += 1
            if have is None or want is None:
                differing = ["missing" if have is None else "unexpected"]
            else:
                differing = sorted(k for k in have.keys() | want.keys()
                                   if have.get(k) != want.get(k))
            columns.update(f"{table}.{name}" for name in differing)
            if len(examples) < 5:  # ids and column names only: values may be credentials
                examples.append(f"{table} {'/'.join(map(str, row_key))}: {', '.join(differing)}")
    return {
        "events_applied_in_order": len(events),
        "events_reordered_at_receipt": clamped,
        "inbox_disagreeing_with_delivery": disagreeing,
        "apply_failures": failures,
        "appointments_written_by_refetch_not_compared": len(not_webhooks),
        "rows_compared": compared,
        "mismatches": sum(mismatches.values()),
        "mismatches_by_table": dict(mismatches),
        "mismatched_columns": dict(columns),
        "examples": examples,
        "seconds": round(time.monotonic() - started, 1),
    }


def _normalized(row: dict[str, Any], now: str) -> dict[str, Any]:
    """The row without bookkeeping, each credential as alive or not at ``now``: the mirror
    wrote one alive when applied (and a purge may have cleared it since it died), the
    in-order mirror only if still alive at ``now``."""
    found = {k: v for k, v in row.items() if k not in BOOKKEEPING}
    for credential, expiry in CREDENTIALS.items():
        if credential in found and found[expiry] is not None and found[expiry] <= now:
            found[credential] = None
    return found


@dataclass
class CronWatch:
    """Counts the claims of the workers' periodic tasks (``worker.main.claim``): a key set
    with ``NX`` for the claim's length (``claim_seconds``, per task), so a new claim shows as
    the key appearing, or its expiry moving later by more than half a claim (it can be set
    again only once expired; less is the polls' own jitter). Polled often enough that no claim
    lives shorter than a poll."""

    redis_url: str
    claim_seconds: dict[str, float]
    claims: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    async def run(self, every: float = 0.2) -> None:
        redis = aioredis.Redis.from_url(self.redis_url, socket_timeout=1)
        names = {name: cron_key(name) for name in CRONS if name != "reconcile"}
        names["reconcile"] = RECONCILE_KEY
        last: dict[str, float] = {}
        try:
            while True:
                try:
                    async with redis.pipeline(transaction=False) as pipe:
                        for key in names.values():
                            pipe.get(key)
                            pipe.pttl(key)
                        answers = await pipe.execute()
                except (RedisError, OSError):
                    await asyncio.sleep(every)  # Redis restarting: no claim meanwhile
                    continue
                now = time.monotonic()
                for n, name in enumerate(names):
                    holder, ttl = answers[2 * n], answers[2 * n + 1]
                    if holder is None or holder == HOLDER.encode() or ttl < 0:
                        last.pop(name, None)
                        continue
                    expires = now + ttl / 1000
                    if name not in last or expires > last[name] + self.claim_seconds[name] / 2:
                        self.claims[name] += 1
                    last[name] = expires
                await asyncio.sleep(every)
        finally:
            await redis.aclose()

    def seconds(self) -> float:
        return time.monotonic() - self.started


def warnings_by_event(text: str) -> dict[str, int]:
    """Warning and error lines of the stack's log, by event name (riding out faults)."""
    found: Counter[str] = Counter()
    for line in text.splitlines():
        if '"level": "warning"' not in line and '"level": "error"' not in line:
            continue
        try:
            event = str(orjson.loads(line).get("event", ""))
        except orjson.JSONDecodeError:
            continue
        found[event if re.fullmatch(r"[a-z_]+", event) else "other"] += 1
    return dict(found.most_common())
