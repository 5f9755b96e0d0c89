"""Read-only figures for the operator's status page, per provider and account.

Each function takes an open ``Store`` (a read-only one will do) and only reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from meetsync.events import iso_utc
from meetsync.store.mirror import Store

Key = tuple[str, str]  # (provider, account)


def credential_freshness(store: Store, now: datetime | None = None) -> dict[Key, dict[str, int]]:
    """Host links of the meetings that still matter: the current meeting of each appointment
    not canceled or deleted and not yet over. (``CASE``, not a sum of booleans: PostgreSQL
    sums no booleans.) ``live``: a host_url the read API serves;
    ``expired``: held past its host_url_expires_at, withheld; ``missing``: none held (never
    received, or purged)."""
    rows = store.conn.execute(
        """
        SELECT a.provider, a.account, count(*),
               sum(CASE WHEN m.host_url IS NOT NULL AND (m.host_url_expires_at IS NULL
                             OR m.host_url_expires_at > :now) THEN 1 ELSE 0 END),
               sum(CASE WHEN m.host_url_expires_at IS NOT NULL
                             AND m.host_url_expires_at <= :now THEN 1 ELSE 0 END),
               sum(CASE WHEN m.host_url IS NULL AND (m.host_url_expires_at IS NULL
                             OR m.host_url_expires_at > :now) THEN 1 ELSE 0 END)
        FROM appointments a JOIN meetings m ON m.provider = a.provider AND m.id = a.meeting_id
        WHERE m.replaced_by IS NULL AND a.status NOT IN ('canceled', 'deleted')
          AND (a.end_at IS NULL OR a.end_at > :now)
        GROUP BY a.provider, a.account
        """,
        {"now": iso_utc(now or store.clock())},
    )
    return {
        (provider, account): {"meetings": n, "live": live or 0, "expired": expired or 0,
                              "missing": missing or 0}
        for provider, account, n, live, expired, missing in rows
    }


def appointment_counts(store: Store, leave_out: Mapping[str, str] | None = None
                       ) -> dict[Key, int]:
    """Appointments by provider and account, without ``leave_out``'s (an appointment id by
    provider: each provider's self-test appointment, which is not the user's)."""
    rows = store.conn.execute(
        "SELECT provider, account, count(*) FROM appointments GROUP BY provider, account")
    counts = {(provider, account): n for provider, account, n in rows}
    for provider, appointment_id in (leave_out or {}).items():
        found = store.conn.execute(
            "SELECT account FROM appointments WHERE provider = ? AND id = ?",
            (provider, appointment_id)).fetchall()
        for (account,) in found:
            counts[(provider, account)] -= 1
    return counts


def dead_letters_awaiting(store: Store) -> dict[Key, int]:
    """Dead letters not yet replayed, by the provider and account their (redacted) event names;
    an unreadable one counts under ``("unknown", "")``."""
    counts: dict[Key, int] = {}
    rows = store.conn.execute("SELECT payload FROM dead_letters WHERE replayed_at IS NULL")
    for (payload,) in rows:
        key = _owner(payload)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _owner(payload: str) -> Key:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return ("unknown", "")
    if not isinstance(event, dict) or not isinstance(event.get("provider"), str):
        return ("unknown", "")
    account = event.get("account")
    return (event["provider"], account if isinstance(account, str) else "default")


def runs(store: Store, ids: Sequence[int]) -> list[dict[str, Any]]:
    """These reconcile runs, newest first."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    cur = store.conn.execute(
        f"SELECT * FROM reconcile_runs WHERE id IN ({marks}) ORDER BY id DESC", tuple(ids))
    keys = [column[0] for column in cur.description]
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


__all__ = ["appointment_counts", "credential_freshness", "dead_letters_awaiting", "runs"]
