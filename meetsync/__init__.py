"""meetsync: a correct local mirror of video meetings, fed by provider webhooks.

The flow is one hop per package: ``webhooks`` receives, ``worker`` acts, ``store`` remembers.
This package holds what they share: settings, logging, the provider-neutral event and the
provider seam.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from meetsync.events import Event, Meeting
from meetsync.settings import Settings, SettingsError

if TYPE_CHECKING:
    from meetsync.store import Store


def open_mirror(path: str | os.PathLike[str] = "meetsync.db") -> Store:
    """The mirror at ``path``, read-only, for downstream apps (safe while a worker writes):
    ``current_meeting(appointment_id)``, ``meeting(id)``, ``latest_meeting(id)``,
    ``appointment(id)``, ``changes_since(seq)``. Close it when done (or use ``with``)."""
    from meetsync.store import open_store

    return open_store(os.fspath(path), readonly=True)


__all__ = ["Event", "Meeting", "Settings", "SettingsError", "open_mirror"]
