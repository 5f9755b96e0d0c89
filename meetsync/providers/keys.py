"""Every provider's settings keys, by provider name: what ``meetsync.config`` validates.

Each provider package declares its keys in its own ``config.py`` (imported alone, so loading
settings does not import the providers' clients).
"""

from __future__ import annotations

import importlib

from meetsync.config import Key
from meetsync.providers import PACKAGES

PROVIDER_KEYS: dict[str, tuple[Key, ...]] = {
    name: importlib.import_module(f"meetsync.providers.{name}.config").KEYS for name in PACKAGES
}

__all__ = ["PROVIDER_KEYS"]
