"""Credential redaction, shared by logging and the dead-letter table.

``host_url``, ``password``, secrets and tokens never leave the process in clear: not in a log
line, an error message nor a dead-letter record.

Two nets: a value under a sensitive key is replaced whole, at any depth; and every string,
whatever its key (a log message, an exception's text, a traceback), has the credential shapes
we know scrubbed from it: a ``token=``/``password=``/... URL parameter (a host URL carries its
token so), a bearer token, a ``whsec_`` secret, a ``sha256=`` signature, a password in a URL.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
        "signature",
        "cookie",
        "x-savvycal-signature",
        "webhook-signature",
        "svix-signature",
    }
)

_PATTERNS = (
    # ?token=... &password=... &pwd=... in any URL
    re.compile(
        r"(?i)([?&;](?:token|access_token|secret|password|pwd|passcode|key|sig|signature|zak)=)"
        r"[^&#\s\"'<>]+"
    ),
    # Authorization: Bearer <token>
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
    # Standard Webhooks secrets
    re.compile(r"(\bwhsec_)[A-Za-z0-9+/=]+"),
    # signature values: sha256=<hex>, v1,<base64>
    re.compile(r"(?i)(\bsha256=)[0-9a-f]{16,}"),
    re.compile(r"(\bv1,)[A-Za-z0-9+/]{20,}={0,2}"),
    # scheme://user:password@host
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/\s@]*:)[^@/\s]+(?=@)"),
)


# Every pattern above needs one of these; most strings (event names, ids) have none.
_MAYBE = re.compile(r"=|://|v1,|whsec_|(?i:bearer)")


def is_sensitive(key: str) -> bool:
    key = key.lower()
    return key in SENSITIVE_KEYS or key.endswith(
        ("_secret", "_token", "_password", "secrets", "_signature")
    )


def scrub(text: str) -> str:
    """``text`` with every credential shape we know replaced by ``[redacted]``."""
    if not _MAYBE.search(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with every sensitive key's value replaced and every string scrubbed,
    at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive(k) and v is not None else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def redact_payload(raw: bytes) -> Any:
    """Parse a JSON payload and redact it; a payload that is not JSON is not kept at all."""
    try:
        return redact(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return {"unparseable": True, "bytes": len(raw)}


def url_passwords(url: str) -> list[str]:
    """The passwords ``url`` carries: in its user part (``user:PASSWORD@``) and as
    ``password=`` parameters (libpq reads one from a PostgreSQL URL's query)."""
    if "://" not in url:
        return []
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    return found + [value for name, value in parse_qsl(parts.query) if name == "password" and value]


def has_password(url: str) -> bool:
    """``url`` carries a password (see ``url_passwords``)."""
    return bool(url_passwords(url))


def masked_url(url: str) -> str:
    """``url`` as output may show it: each password it carries (see ``has_password``) is
    ``***``, everything else as written."""
    if not has_password(url):
        return url
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        shown = [(name, "***" if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urlencode(shown, safe="*"))
    return urlunsplit(parts)
