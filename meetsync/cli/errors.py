"""The command line's errors, each with its exit code (``EXIT_CODES``); the classes are the
root tree's (``meetsync.errors``).

Errors::

    SettingsError   configuration invalid or missing: exit 3
    Unavailable     a dependency is down or absent: exit 4
    StoreError      the mirror's database down, or locked past the busy timeout: exit 4
"""

from __future__ import annotations

from meetsync.errors import CliError, SettingsError, StoreError, Unavailable

__all__ = ["CliError", "SettingsError", "StoreError", "Unavailable"]
