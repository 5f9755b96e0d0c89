"""Each subscriber's cursor on the change log, its counters and dead letters (m009/p003).

A subscriber's ``seq`` is the last change it acknowledged (or that its filters skipped): its
worker sends the change after it next, so a subscriber that was down, or whose worker died,
resumes there. Every write that moves a cursor is a compare-and-set on the ``seq`` its writer
read: a worker that lost its lease (or a ``replay`` that moved the cursor meanwhile) moves
nothing, and re-reads. The change log itself is never pruned, so a cursor never points before
what is left of it.

Each function takes an open ``Store`` (the worker's, or the CLI's) and returns plain data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meetsync.store.mirror import Store

_COLUMNS = ("name, seq, sent, failed, dead, attempts, failing_since_ms, last_error,"
            " disabled_at, disabled_reason, disabled_url, updated_at")


def _rows(cur: Any) -> list[dict[str, Any]]:
    keys = [column[0] for column in cur.description]
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]


def ensure(store: Store, names: Iterable[str]) -> None:
    """A cursor for each subscriber that has none yet, at the log's start: a new subscriber
    gets the whole change log (``replay --since`` moves it on)."""
    for name in names:
        store.conn.execute(
            f"INSERT INTO subscriber_cursors (name, updated_at) VALUES (?, {store.dialect.now})"
            " ON CONFLICT (name) DO NOTHING", (name,))


def cursor(store: Store, name: str) -> dict[str, Any] | None:
    found = _rows(store.conn.execute(
        f"SELECT {_COLUMNS} FROM subscriber_cursors WHERE name = ?", (name,)))
    return found[0] if found else None


def cursors(store: Store) -> list[dict[str, Any]]:
    """Every cursor, by name, with its lag: ``lag_seq`` (changes logged after it) and
    ``oldest_changed_at`` (when the first of them was logged; None when none is)."""
    rows = _rows(store.conn.execute(
        f"SELECT {_COLUMNS}, (SELECT max(seq) FROM changes) AS head,"
        " (SELECT min(c.changed_at) FROM changes c WHERE c.seq = (SELECT min(seq) FROM changes"
        "  WHERE seq > s.seq)) AS oldest_changed_at"
        " FROM subscriber_cursors s ORDER BY name"))
    for row in rows:
        row["lag_seq"] = max(0, int(row.pop("head") or 0) - int(row["seq"]))
    return rows


def changes_after(store: Store, seq: int, limit: int) -> list[dict[str, Any]]:
    """The change log after ``seq``, oldest first, each with its appointment's ``account``
    (None when the mirror holds no such appointment)."""
    return _rows(store.conn.execute(
        "SELECT c.seq, c.provider, a.account, c.entity, c.entity_id, c.appointment_id,"
        " c.changed_at FROM changes c LEFT JOIN appointments a"
        " ON a.provider = c.provider AND a.id = c.appointment_id"
        " WHERE c.seq > ? ORDER BY c.seq LIMIT ?", (seq, limit)))


def head(store: Store) -> int:
    """The newest ``seq`` in the log (0 when empty)."""
    row = store.conn.execute("SELECT max(seq) FROM changes").fetchone()
    return int(row[0] or 0)


def advance(store: Store, name: str, expected: int, seq: int, *, sent: bool) -> bool:
    """Move the cursor from ``expected`` to ``seq`` (delivered when ``sent``, else skipped) and
    clear its failure; False when the cursor is no longer at ``expected``."""
    cur = store.conn.execute(
        "UPDATE subscriber_cursors SET seq = ?, sent = sent + ?, attempts = 0,"
        f" failing_since_ms = NULL, last_error = NULL, updated_at = {store.dialect.now}"
        " WHERE name = ? AND seq = ?", (seq, 1 if sent else 0, name, expected))
    return int(cur.rowcount) == 1


def failed(
    store: Store, name: str, expected: int, now_ms: int, error: str
) -> tuple[int, int] | None:
    """Count a failed attempt at the change after ``expected``; returns since when (ms) that
    change has been failing and its attempts so far, or None when the cursor moved."""
    row = store.conn.execute(
        "UPDATE subscriber_cursors SET failed = failed + 1, attempts = attempts + 1,"
        " failing_since_ms = COALESCE(failing_since_ms, ?), last_error = ?,"
        f" updated_at = {store.dialect.now} WHERE name = ? AND seq = ?"
        " RETURNING failing_since_ms, attempts",
        (now_ms, error[:300], name, expected)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def give_up(store: Store, name: str, expected: int, seq: int, webhook_id: str,
            reason: str) -> bool:
    """Dead-letter the change ``seq`` for this subscriber and move past it, in one
    transaction; False (nothing written) when the cursor moved."""
    store.conn.execute(store.dialect.begin)
    try:
        row = store.conn.execute(
            "SELECT attempts FROM subscriber_cursors WHERE name = ? AND seq = ?",
            (name, expected)).fetchone()
        if row is not None:
            store.conn.execute(
                "INSERT INTO subscriber_dead_letters (subscriber, seq, webhook_id, reason,"
                f" attempts, created_at) VALUES (?, ?, ?, ?, ?, {store.dialect.now})",
                (name, seq, webhook_id, reason[:300], int(row[0])))
            store.conn.execute(
                "UPDATE subscriber_cursors SET seq = ?, dead = dead + 1, attempts = 0,"
                f" failing_since_ms = NULL, last_error = NULL, updated_at = {store.dialect.now}"
                " WHERE name = ?", (seq, name))
    except BaseException:
        store.conn.execute("ROLLBACK")
        raise
    store.conn.execute("COMMIT")
    return row is not None


def disable(store: Store, name: str, reason: str, url_digest: str) -> None:
    """Stop deliveries to a subscriber that said it is gone (410), until re-enabled."""
    store.conn.execute(
        f"UPDATE subscriber_cursors SET disabled_at = {store.dialect.now}, disabled_reason = ?,"
        f" disabled_url = ?, updated_at = {store.dialect.now} WHERE name = ?",
        (reason, url_digest, name))


def enable(store: Store, name: str) -> bool:
    """Resume deliveries (from the cursor); False when it was not disabled."""
    cur = store.conn.execute(
        "UPDATE subscriber_cursors SET disabled_at = NULL, disabled_reason = NULL,"
        " disabled_url = NULL, attempts = 0, failing_since_ms = NULL,"
        f" updated_at = {store.dialect.now}"
        " WHERE name = ? AND disabled_at IS NOT NULL", (name,))
    return int(cur.rowcount) == 1


def rewind(store: Store, name: str, seq: int) -> None:
    """Deliver again everything after ``seq`` (``meetsync subscribers replay``), or skip
    ahead to it."""
    ensure(store, [name])
    store.conn.execute(
        "UPDATE subscriber_cursors SET seq = ?, attempts = 0, failing_since_ms = NULL,"
        f" last_error = NULL, updated_at = {store.dialect.now} WHERE name = ?", (seq, name))


def dead_letters(store: Store, name: str | None = None) -> list[dict[str, Any]]:
    """Changes given up on (after the retry horizon), oldest first."""
    return _rows(store.conn.execute(
        "SELECT id, subscriber, seq, webhook_id, reason, attempts, created_at"
        " FROM subscriber_dead_letters WHERE CAST(? AS TEXT) IS NULL OR subscriber = ?"
        " ORDER BY id", (name, name)))


__all__ = ["advance", "changes_after", "cursor", "cursors", "dead_letters", "disable", "enable",
           "ensure", "failed", "give_up", "head", "rewind"]
