"""Each provider's self-test appointment id (``meetsync endpoints test``'s marked delivery):
what the status page leaves out of its counts (docs/providers.md, "Registering endpoints")."""

from __future__ import annotations

import importlib
from functools import cache

from meetsync.providers import PACKAGES


@cache
def selftest_appointment_ids() -> dict[str, str]:
    """``SELFTEST_APPOINTMENT_ID`` by provider, for the providers that send test deliveries
    (a poll-only one has none)."""
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            module = importlib.import_module(f"meetsync.providers.{name}.selftest")
        except ModuleNotFoundError:
            continue
        ident = getattr(module, "SELFTEST_APPOINTMENT_ID", None)
        if isinstance(ident, str):
            found[name] = ident
    return found


__all__ = ["selftest_appointment_ids"]
