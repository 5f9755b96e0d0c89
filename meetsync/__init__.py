"""meetsync: a correct local mirror of video meetings, fed by provider webhooks.

The flow is one hop per package: ``webhooks`` receives, ``worker`` acts, ``store`` remembers.
This package holds what they share: settings, logging, the provider-neutral event and the
provider seam.
"""

from __future__ import annotations

from meetsync.events import Event, Meeting
from meetsync.settings import Settings, SettingsError

__all__ = ["Event", "Meeting", "Settings", "SettingsError"]
