"""When a meeting's credential (its ``host_url``, its ``password``) is still live: one rule,
written once, in Python and as the SQL the store derives from it.

A credential lives until its own expiry: dead at ``now`` once it has an expiry that is not
after ``now``; no expiry (None, NULL) means the provider gives it no end. Times are ISO-8601
UTC text of one width, so text order is time order, in Python and in SQL alike.
"""

from __future__ import annotations


def live(expires_at: str | None, now: str) -> bool:
    """Whether a credential expiring at ``expires_at`` still lives at ``now``."""
    return expires_at is None or expires_at > now


def dead(expires_at: str | None, now: str) -> bool:
    return not live(expires_at, now)


def live_sql(expires_at: str, now: str, *, typed: bool = False) -> str:
    """``live`` as an SQL condition over two expressions. ``typed``: ``expires_at`` is a bound
    parameter, cast so that PostgreSQL knows its type in ``IS NULL``."""
    is_null = f"CAST({expires_at} AS TEXT) IS NULL" if typed else f"{expires_at} IS NULL"
    return f"({is_null} OR {expires_at} > {now})"


def dead_sql(expires_at: str, now: str) -> str:
    """``dead`` as an SQL condition: NULL (no expiry) compares to NULL, never true."""
    return f"{expires_at} <= {now}"


__all__ = ["dead", "dead_sql", "live", "live_sql"]
