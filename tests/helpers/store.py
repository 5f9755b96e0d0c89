"""Questions only tests ask of a mirror."""

from __future__ import annotations

from meetsync.store import Store
from meetsync.store.mirror import DEFAULT_PROVIDER


def tied_appointments(store: Store, limit: int = 1000, *,
                      provider: str = DEFAULT_PROVIDER) -> list[str]:
    """Appointments whose newest snapshot tied with another: a refetch decides them (the
    worker refetches the ties ``Store.apply`` reports)."""
    rows = store.conn.execute(
        "SELECT id FROM appointments WHERE provider = ? AND tie_at IS NOT NULL LIMIT ?",
        (provider, limit),
    )
    return [row[0] for row in rows]
