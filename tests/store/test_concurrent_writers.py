"""Workers sharing one mirror write through their own connections at once: an event given up on
by several of them (each holding a copy of its stream entry) is dead-lettered once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from meetsync.store import Store, open_store

WRITERS = 6
EVENTS = 20


def test_concurrent_dead_letters_of_one_event_make_one_letter(db_path: Path | str) -> None:
    open_store(db_path).close()  # migrated once, before the writers race
    stores = [open_store(db_path) for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)

    def give_up(store: Store) -> list[int]:
        ids = []
        for n in range(EVENTS):
            barrier.wait(timeout=30)
            ids.append(store.add_dead_letter(f"evt_{n}", "appt_1", "appointment.created",
                                             "poison", 5, "{}"))
        return ids

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            letters = list(pool.map(give_up, stores))
        rows = stores[0].dead_letters()
    finally:
        for store in stores:
            store.close()
    assert len(rows) == EVENTS, sorted(row["event_id"] for row in rows)
    # Each writer was told the one letter's id.
    assert all(ids == letters[0] for ids in letters)
