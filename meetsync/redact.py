"""Credential redaction, shared by logging and the dead-letter table.

``host_url``, ``password``, secrets and tokens never leave the process in clear: not in a log
line, an error message nor a dead-letter record.
"""

from __future__ import annotations

from typing import Any

import orjson

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "host_url",
        "start_url",
        "password",
        "secret",
        "token",
        "authorization",
        "api_token",
        "read_token",
        "x-savvycal-signature",
        "webhook-signature",
        "svix-signature",
    }
)


def is_sensitive(key: str) -> bool:
    key = key.lower()
    return key in SENSITIVE_KEYS or key.endswith(("_secret", "_token", "_password", "secrets"))


def redact(value: Any) -> Any:
    """A copy of ``value`` with every sensitive key's value replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_payload(raw: bytes) -> Any:
    """Parse a JSON payload and redact it; a payload that is not JSON is not kept at all."""
    try:
        return redact(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return {"unparseable": True, "bytes": len(raw)}
