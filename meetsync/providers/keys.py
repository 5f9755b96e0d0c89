"""Every provider's settings keys, by provider name: what ``meetsync.config`` validates.

A new provider adds one line here and a ``config.py`` of its own.
"""

from __future__ import annotations

from meetsync.config import Key
from meetsync.providers.savvycal.config import KEYS as SAVVYCAL

PROVIDER_KEYS: dict[str, tuple[Key, ...]] = {
    "savvycal": SAVVYCAL,
}

__all__ = ["PROVIDER_KEYS"]
