"""Reading a provider's JSON into the mirror's fields: the rules every provider's mapping shares.

A value the mirror cannot hold is the provider's mistake, not ours: ``EnvelopeError`` (a
webhook answers 400; a fetch or a sweep reports the row) with a message naming the field and
never its value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meetsync.events import iso_utc
from meetsync.providers import EnvelopeError


def iso(moment: datetime | None, what: str) -> str | None:
    """``moment`` as the mirror's ISO-8601 UTC text (None stays None); a moment past what the
    text can say is ``EnvelopeError("{what} is out of range")``."""
    if moment is None:
        return None
    try:
        return iso_utc(moment)
    except (OverflowError, ValueError):
        raise EnvelopeError(f"{what} is out of range") from None


def optional_text(
    obj: dict[str, Any], name: str, what: str, *, limit: int | None = None
) -> str | None:
    """``obj[name]`` as text, at most ``limit`` characters; None when absent, null or ``""``;
    anything but a string is ``EnvelopeError("{what} {name} must be a string")``."""
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} {name} must be a string")
    return value if limit is None else value[:limit]


__all__ = ["iso", "optional_text"]
