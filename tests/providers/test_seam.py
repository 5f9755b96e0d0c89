"""The seam holds: the receiver, worker, store and read API name no provider.

Everything provider-specific lives in ``meetsync/providers/<name>/``; a provider's name in
``webhooks/``, ``worker/`` or ``store/`` means a special case crept in. (The name of the
provider every mirror served first is ``meetsync.providers.LEGACY_PROVIDER``.)
"""

from __future__ import annotations

import re
from pathlib import Path

from meetsync.providers import PACKAGES, providers

ROOT = Path(__file__).resolve().parents[2]
NEUTRAL = ("webhooks", "worker", "store")
NAMES = re.compile(r"savvy\s*cal|zoom|avon|consularia", re.IGNORECASE)


def test_the_neutral_packages_name_no_provider() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for folder in NEUTRAL
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if NAMES.search(line)
    ]
    assert found == []


def test_the_grep_would_catch_a_provider_name() -> None:
    assert NAMES.search("from meetsync.providers.savvycal import x")
    assert NAMES.search("ZOOM_API_URL")


def test_every_package_is_a_provider_with_its_name() -> None:
    found = providers()
    assert list(found) == list(PACKAGES)
    for name, provider in found.items():
        assert provider.name == name
        assert provider.keys, f"{name} declares no settings"
        assert provider.horizon.total_seconds() > 0
