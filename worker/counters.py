"""The pipeline's counters (``meetsync:stats``) as they are shown.

The hash holds a fixed set of fields: no field is ever named after what a sender chose. An
event type we do not handle counts in one field, ``ignored_types`` (its name goes to the log
only); releases before this one kept a field per type name (``ignored_type:<name>``), which an
unsigned sender could multiply without bound. ``folded`` shows those as part of
``ignored_types``, so ``meetsync stats`` and the status page stay short on a deployment that
still holds them (``HDEL meetsync:stats`` each ``ignored_type:*`` field, or leave them: they
no longer grow).
"""

from __future__ import annotations

from collections.abc import Mapping

IGNORED_TYPES = "ignored_types"
LEGACY_IGNORED = "ignored_type:"


def folded(counters: Mapping[str, int]) -> dict[str, int]:
    """``counters`` with every legacy ``ignored_type:<name>`` field summed into
    ``ignored_types`` (absent when neither is there)."""
    shown: dict[str, int] = {}
    ignored = 0
    found = False
    for name, value in counters.items():
        if name == IGNORED_TYPES or name.startswith(LEGACY_IGNORED):
            ignored += value
            found = True
        else:
            shown[name] = value
    if found:
        shown[IGNORED_TYPES] = ignored
    return shown


__all__ = ["IGNORED_TYPES", "LEGACY_IGNORED", "folded"]
