"""Build ``Settings`` from the environment and an optional TOML file (``MEETSYNC_CONFIG``).

Keys are data (``Key``): the core's below, each provider's in its ``config.py``, gathered in
``meetsync.providers.keys`` and passed in, so nothing here names a provider.

Precedence: an environment variable beats the file for core keys. A provider's single-account
variables (``SAVVYCAL_API_TOKEN``...) make its ``default`` account; the file's accounts sit beside
it, and defining ``default`` in both is an error. Relative paths resolve against
``MEETSYNC_CALLER_DIR`` (set by ``run.sh``: where the user ran it) or the current directory;
paths inside the file resolve against the file's directory. Every problem is collected and
raised at once as one ``SettingsError``; messages name the variable, or the file, line and key,
never a value.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from meetsync.settings import Account, Settings, SettingsError

Kind = Literal["text", "url", "secrets", "int", "path"]
Registry = Mapping[str, tuple["Key", ...]]

ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Key:
    """One setting: its name in the file, its environment variable, and how to check it."""

    name: str
    env: str | None = None
    kind: Kind = "text"
    secret: bool = False
    default: object = None
    prefix: str = ""  # secrets: each must start with it
    schemes: tuple[str, ...] = ("http", "https")  # url
    minimum: int = 1  # int
    maximum: int | None = None  # int
    choices: tuple[str, ...] = ()  # text, case-insensitive, stored upper-case
    webhook: bool = False  # a secret that verifies webhook deliveries


CORE_KEYS: tuple[Key, ...] = (
    Key("db", "MEETSYNC_DB", "path", default="./meetsync.db"),
    Key("redis_url", "REDIS_URL", "url", schemes=("redis", "rediss")),
    Key("queue_url", "MEETSYNC_QUEUE_URL", "url",
        schemes=("redis", "rediss", "redis+cluster", "rediss+cluster")),
    # Each partition costs every worker a blocked connection and a read per round.
    Key("queue_partitions", "MEETSYNC_QUEUE_PARTITIONS", "int", default=1, maximum=64),
    Key("read_token", "MEETSYNC_READ_TOKEN", secret=True),
    Key("reconcile_interval_seconds", "RECONCILE_INTERVAL_SECONDS", "int", default=300),
    Key("claim_idle_ms", "MEETSYNC_CLAIM_IDLE_MS", "int", default=30_000),
    Key("clock_skew_seconds", "MEETSYNC_CLOCK_SKEW_SECONDS", "int", default=300),
    Key("refresh_window_seconds", "MEETSYNC_REFRESH_WINDOW_SECONDS", "int", default=86_400),
    Key("refresh_margin_seconds", "MEETSYNC_REFRESH_MARGIN_SECONDS", "int", default=900),
    Key("refresh_wait_seconds", "MEETSYNC_REFRESH_WAIT_SECONDS", "int", default=5, minimum=0,
        maximum=30),
    Key("refetch_horizon_seconds", "MEETSYNC_REFETCH_HORIZON_SECONDS", "int", default=300,
        minimum=10, maximum=86_400),
    Key("port", "PORT", "int", default=8000, maximum=65535),
    Key("metrics_token", "MEETSYNC_METRICS_TOKEN", secret=True),
    Key("worker_metrics_port", "MEETSYNC_WORKER_METRICS_PORT", "int", maximum=65535),
    Key("log_level", "LOG_LEVEL", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)
_CORE_FIELDS = {"db": "db_path"}


def caller_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where relative paths the user typed are meant from."""
    env = os.environ if env is None else env
    return Path(env.get("MEETSYNC_CALLER_DIR") or os.getcwd())


def user_path(value: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Path:
    """``value`` resolved against the caller's directory (a ``--data-dir``, a backup path...)."""
    return caller_dir(env) / Path(value).expanduser()


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    raw = env.get("MEETSYNC_CONFIG")
    return user_path(raw, env) if raw else None


def load_settings(env: Mapping[str, str] | None, registry: Registry) -> Settings:
    """Validate everything, then build the settings; raise one ``SettingsError`` listing all."""
    env = os.environ if env is None else env
    problems: list[str] = []
    base = caller_dir(env)
    document, source = _read_file(config_path(env), problems)
    file_base = source.path.parent if source else base

    core: dict[str, object] = {}
    for key in CORE_KEYS:
        if env.get(key.env or ""):
            value = _check(key, env[key.env or ""], key.env or key.name, problems, from_env=True)
            where = base
        elif key.name in document:
            value = source.value(key, document[key.name], (key.name,), env, problems)  # type: ignore[union-attr]
            where = file_base
        else:
            value, where = key.default, base
        if key.kind == "path" and isinstance(value, str) and "://" not in value:
            value = str(where / Path(value).expanduser())
        core[_CORE_FIELDS.get(key.name, key.name)] = value

    accounts = _env_accounts(env, registry, problems)
    for name in document.keys() - {k.name for k in CORE_KEYS} - {"providers"}:
        problems.append(source.problem((name,), "is not a known setting"))  # type: ignore[union-attr]
    if source is not None:
        accounts += _file_accounts(document.get("providers", {}), source, env, registry,
                                   {a.key for a in accounts}, problems)
    if problems:
        raise SettingsError(*problems)
    return Settings(**core, accounts=tuple(accounts))  # type: ignore[arg-type]


def _env_accounts(env: Mapping[str, str], registry: Registry, problems: list[str]) -> list[Account]:
    accounts = []
    for provider, keys in registry.items():
        if not any(key.env and env.get(key.env) for key in keys):
            continue
        values = {
            key.name: _check(key, env[key.env], key.env, problems, from_env=True)
            if key.env and env.get(key.env) else _default(key)
            for key in keys
        }
        accounts.append(Account(provider, "default", values))
    return accounts


def _file_accounts(
    providers: object, source: _Source, env: Mapping[str, str], registry: Registry,
    taken: set[tuple[str, str]], problems: list[str],
) -> list[Account]:
    if not isinstance(providers, dict):
        problems.append(source.problem(("providers",), "must be a table"))
        return []
    accounts = []
    for provider, table in providers.items():
        path: tuple[str, ...] = ("providers", provider)
        if provider not in registry:
            known = ", ".join(sorted(registry))
            problems.append(source.problem(path, f"is not a known provider ({known})"))
            continue
        if not isinstance(table, dict) or not isinstance(table.get("accounts", {}), dict):
            problems.append(source.problem(path, "must be a table of [accounts.NAME] tables"))
            continue
        for extra in table.keys() - {"accounts"}:
            problems.append(source.problem((*path, extra), "is not a known setting"))
        for name, given in table.get("accounts", {}).items():
            where = (*path, "accounts", name)
            if not ACCOUNT_NAME.fullmatch(name):
                problems.append(source.problem(where, "must be named like [a-z0-9][a-z0-9_-]*"))
            elif (provider, name) in taken:
                problems.append(source.problem(
                    where, "is also defined by the environment (its single-account variables)"))
            elif not isinstance(given, dict):
                problems.append(source.problem(where, "must be a table"))
            else:
                accounts.append(_file_account(provider, name, given, registry[provider],
                                              source, env, problems))
    return accounts


def _file_account(
    provider: str, name: str, given: dict[str, object], keys: tuple[Key, ...], source: _Source,
    env: Mapping[str, str], problems: list[str],
) -> Account:
    path = ("providers", provider, "accounts", name)
    known = {key.name: key for key in keys}
    for extra in given.keys() - known.keys():
        problems.append(source.problem((*path, extra), "is not a known setting"))
    values = {
        key.name: source.value(key, given[key.name], (*path, key.name), env, problems)
        if key.name in given else _default(key)
        for key in keys
    }
    return Account(provider, name, values)


def _default(key: Key) -> object:
    return () if key.kind == "secrets" else key.default


def _check(key: Key, raw: object, label: str, problems: list[str], *, from_env: bool) -> object:
    """``raw`` as ``key`` wants it, or ``key``'s default after recording what is wrong."""
    problem, value = _convert(key, raw, from_env)
    if problem:
        problems.append(f"{label} {problem}")
        return _default(key)
    return value


def _convert(key: Key, raw: object, from_env: bool) -> tuple[str | None, object]:
    if key.kind == "int":
        span = (f"from {key.minimum} to {key.maximum}" if key.maximum is not None
                else f"of at least {key.minimum}")
        wrong = f"must be a whole number {span}"
        if isinstance(raw, str) and from_env:
            raw = int(raw.strip()) if re.fullmatch(r"\s*-?\d+\s*", raw) else None
        if not isinstance(raw, int) or isinstance(raw, bool):
            return wrong, None
        if raw < key.minimum or (key.maximum is not None and raw > key.maximum):
            return wrong, None
        return None, raw
    if key.kind == "secrets":
        if isinstance(raw, str):
            parts = [part.strip() for part in raw.split(",")] if from_env else [raw.strip()]
        elif isinstance(raw, list) and all(isinstance(part, str) for part in raw):
            parts = [part.strip() for part in raw]
        else:
            return "must be a string or a list of strings", None
        found = tuple(part for part in parts if part)
        if key.prefix and not all(part.startswith(key.prefix) for part in found):
            return f"must start with {key.prefix} (every secret in it)", None
        return None, found
    if not isinstance(raw, str):
        return "must be a string", None
    text = raw.strip()
    if key.kind == "url":
        scheme = urlsplit(text).scheme
        if scheme not in key.schemes or not urlsplit(text).netloc:
            names = " or ".join(f"{s}://" for s in key.schemes)
            article = "an" if key.schemes[0][0] in "aeioh" else "a"
            return f"must be {article} {names} URL", None
        return None, text.rstrip("/") if scheme.startswith("http") else text
    if key.choices:
        if text.upper() not in key.choices:
            return f"must be one of {', '.join(key.choices)}", None
        return None, text.upper()
    return (None, text) if text or key.kind != "path" else ("must not be empty", None)


@dataclass(frozen=True)
class _Source:
    """The config file: its path and where each key sits in it (for messages)."""

    path: Path
    lines: Mapping[tuple[str, ...], int]

    def problem(self, path: tuple[str, ...], text: str) -> str:
        # the key's own line, else its first sub-key's (``[a.b.c]`` defines ``a.b``), else
        # the nearest enclosing table's
        within = [n for key, n in self.lines.items() if key[: len(path)] == path]
        line = min(within) if within else next(
            (self.lines[path[:n]] for n in range(len(path) - 1, 0, -1) if path[:n] in self.lines),
            None)
        where = f"{self.path}:{line}" if line else str(self.path)
        return f"{where}: {'.'.join(path)} {text}"

    def value(self, key: Key, raw: object, path: tuple[str, ...], env: Mapping[str, str],
              problems: list[str]) -> object:
        """A file value, following ``{ env = "NAME" }`` to the environment."""
        from_env = False
        if isinstance(raw, dict):
            name = raw.get("env")
            if set(raw) != {"env"} or not isinstance(name, str):
                problems.append(self.problem(path, 'must be a value or { env = "NAME" }'))
                return _default(key)
            if not env.get(name):
                problems.append(self.problem(path, f"refers to {name}, which is not set"))
                return _default(key)
            raw, from_env = env[name], True
        label = self.problem(path, "").rstrip()
        return _check(key, raw, label, problems, from_env=from_env)


def _read_file(path: Path | None, problems: list[str]) -> tuple[dict[str, object], _Source | None]:
    if path is None:
        return {}, None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problems.append(f"MEETSYNC_CONFIG: cannot read {path}: {reason}")
        return {}, None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = re.search(r" \(at line (\d+), column \d+\)$", message)
        where = f"{path}:{at.group(1)}" if at else str(path)
        problems.append(f"{where}: not valid TOML: {message[: at.start()] if at else message}")
        return {}, None
    return document, _Source(path, _key_lines(text))


_HEADER = re.compile(r"\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_PART_RE = r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'"""
_ASSIGN = re.compile(rf"\s*((?:{_PART_RE})(?:\s*\.\s*(?:{_PART_RE}))*)\s*=")
_PART = re.compile(_PART_RE)


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of each table and key (tomllib reports lines for syntax errors only)."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        assign = None if header else _ASSIGN.match(line)
        if header:
            table = _parts(header.group(1))
            lines.setdefault(table, number)
        elif assign:
            lines.setdefault((*table, *_parts(assign.group(1))), number)
    return lines


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _PART.findall(dotted))


def masked(settings: Settings, registry: Registry) -> dict[str, object]:
    """The effective settings as data, secrets masked: what ``meetsync config check`` prints."""
    core = {key.name: _shown(key, getattr(settings, _CORE_FIELDS.get(key.name, key.name)))
            for key in CORE_KEYS}
    providers: dict[str, dict[str, object]] = {}
    for account in settings.accounts:
        keys = registry.get(account.provider, ())
        providers.setdefault(account.provider, {})[account.name] = {
            key.name: _shown(key, account.values.get(key.name)) for key in keys
        }
    return {**core, "providers": providers}


def _shown(key: Key, value: object) -> object:
    if value is None or value == ():
        return None
    if key.secret or key.kind == "secrets":
        count = len(value) if isinstance(value, tuple) else 1
        return "***" if count == 1 else f"*** ({count} secrets)"
    if key.kind in ("url", "path") and isinstance(value, str) and "://" in value:
        parts = urlsplit(value)  # a postgresql:// MEETSYNC_DB may hold a password too
        if parts.password:
            return value.replace(f":{parts.password}@", ":***@", 1)
    return value


__all__ = ["CORE_KEYS", "Key", "caller_dir", "config_path", "load_settings", "masked",
           "user_path"]
