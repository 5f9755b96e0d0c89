"""Every provider's settings keys, by provider name: what ``meetsync.config`` validates.

Each provider package declares its keys in its own ``config.py`` (imported alone, so loading
settings does not import the providers' clients). The core's settings name no provider: the
registry is handed to the loader here, above it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from meetsync.config import load_settings
from meetsync.providers import PACKAGES
from meetsync.settings import Key, Settings

PROVIDER_KEYS: dict[str, tuple[Key, ...]] = {
    name: importlib.import_module(f"meetsync.providers.{name}.config").KEYS for name in PACKAGES
}


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment (``os.environ`` when None) and ``MEETSYNC_CONFIG``, every
    provider's keys registered."""
    return load_settings(env, PROVIDER_KEYS)


__all__ = ["PROVIDER_KEYS", "settings_from_env"]
