"""Text the mirror can store, whichever database holds it.

PostgreSQL's ``text`` cannot hold U+0000 ("text fields cannot contain NUL"), and no UTF-8
encoder (PostgreSQL's, SQLite's driver, orjson) takes a lone surrogate (U+D800-U+DFFF), which
a JSON ``"\\ud800"`` escape decodes to in Python's ``json``. Such text is refused where it
enters (the receiver answers 400, the store fails that event on its own) and escaped where it
must be kept anyway (a dead letter records what it was given up on, whatever it holds).
See https://www.postgresql.org/docs/current/datatype-character.html.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import orjson

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: Any, path: str = "") -> str | None:
    """The path (``meeting.join_url``, ``participants[2].display_name``) of the first string
    in ``value`` the mirror cannot store, at any depth of dataclasses, mappings (keys too) and
    sequences; None when every string is storable."""
    if not path and _clean(value):
        return None
    if isinstance(value, str):
        return (path or "value") if _UNSTORABLE.search(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            found = unstorable(getattr(value, item.name), _join(path, item.name))
            if found is not None:
                return found
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = unstorable(key, path) or unstorable(item, _join(path, str(key)))
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _clean(value: Any) -> bool:
    """A quick look first (what every event gets, on the hot path): orjson writes a NUL as
    ``\\u0000`` and refuses a lone surrogate, several times faster than walking the fields.
    False means maybe (a backslash before ``u0000`` matches too): the walk decides."""
    try:
        return b"\\u0000" not in orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a surrogate, or a value it does not take
        return False


def storable(text: str) -> str:
    """``text`` with each NUL and lone surrogate written as its JSON escape (``\\u0000``):
    storable anywhere, and still telling what it was."""
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def storable_value(value: Any) -> Any:
    """A copy of a JSON value with every string (and key) made ``storable``."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, Mapping):
        return {storable_value(key): storable_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_value(item) for item in value]
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
