"""structlog, configured once: JSON off a terminal, console on one, credentials redacted.

Stdlib loggers (uvicorn, arq) go through the same processors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from meetsync.redact import redact


def redact_credentials(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A processor: no credential reaches a log line, at any depth of any field."""
    return redact(dict(event_dict))  # type: ignore[no-any-return]


MAX_VALUE_CHARS = 500  # past any message or error of ours; far short of a body (1 MiB)
MAX_TRACE_CHARS = 8000  # a traceback (``exception``, ``stack``) is ours, but may quote input
_LONG_KEYS = frozenset({"exception", "stack"})
CUT = "…[{} more chars]"


def _cut(value: Any, bound: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= bound else value[:bound] + CUT.format(len(value) - bound)
    if isinstance(value, dict):
        return {k: _cut(v, bound) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut(v, bound) for v in value]
    return value


def truncate_values(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A processor: every string in a log line, at any depth, cut to ``MAX_VALUE_CHARS`` (a
    traceback to ``MAX_TRACE_CHARS``) with a marker saying how much was cut, so no sender can
    make a line as long as what it sent (an event type name may be ~1 MiB). Runs after
    ``redact_credentials``: a credential is replaced whole before any cut could split it."""
    return {k: _cut(v, MAX_TRACE_CHARS if k in _LONG_KEYS else MAX_VALUE_CHARS)
            for k, v in event_dict.items()}


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Route structlog and stdlib logging through one pipeline. Call once at start-up."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_credentials,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_credentials,
            truncate_values,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO: noise, and a URL may carry an id worth keeping quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
