"""Build ``Settings`` from the environment and an optional TOML file (``MEETSYNC_CONFIG``).

This is the one loader. Keys are data (``meetsync.settings.Key``): the core's below, each
provider's in its ``config.py``, gathered in ``meetsync.providers.keys`` and passed in, so
nothing here names a provider (``meetsync.providers.keys.settings_from_env`` passes them all).

Precedence: an environment variable beats the file for core keys. A provider's single-account
variables (``SAVVYCAL_API_TOKEN``...) make its ``default`` account; the file's accounts sit beside
it, and defining ``default`` in both is an error. Relative paths resolve against
``MEETSYNC_CALLER_DIR`` (set by ``run.sh``: where the user ran it) or the current directory;
paths inside the file resolve against the file's directory. Every problem is collected and
raised at once as one ``SettingsError``; messages name the variable, or the file, line and key,
never a value.
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from meetsync.redact import masked_url
from meetsync.settings import (
    ENTITIES,
    Account,
    Key,
    Registry,
    Settings,
    SettingsError,
    Subscriber,
)

ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


CORE_KEYS: tuple[Key, ...] = (
    Key("db", "MEETSYNC_DB", "db", default="./meetsync.db"),
    Key("redis_url", "REDIS_URL", "url", schemes=("redis", "rediss")),
    Key("queue_url", "MEETSYNC_QUEUE_URL", "url",
        schemes=("redis", "rediss", "redis+cluster", "rediss+cluster")),
    # Each partition costs every worker a blocked connection and a read per round.
    Key("queue_partitions", "MEETSYNC_QUEUE_PARTITIONS", "int", default=1, maximum=64),
    Key("read_token", "MEETSYNC_READ_TOKEN", secret=True),
    Key("reconcile_interval_seconds", "RECONCILE_INTERVAL_SECONDS", "int", default=300),
    Key("claim_idle_ms", "MEETSYNC_CLAIM_IDLE_MS", "int", default=30_000),
    # A backlog folds more events per appointment per batch, and pays fewer commits, the bigger
    # the batch (BENCHMARKS.md); a quiet queue's batches are as small as what has arrived.
    Key("batch_size", "MEETSYNC_BATCH_SIZE", "int", default=5_000, maximum=50_000),
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
    Key("subscriber_backoff_ms", "MEETSYNC_SUBSCRIBER_BACKOFF_MS", "int", default=1000),
    Key("subscriber_backoff_max_seconds", "MEETSYNC_SUBSCRIBER_BACKOFF_MAX_SECONDS", "int",
        default=3600),
    Key("subscriber_retry_seconds", "MEETSYNC_SUBSCRIBER_RETRY_SECONDS", "int", default=86_400),
    Key("subscriber_timeout_seconds", "MEETSYNC_SUBSCRIBER_TIMEOUT_SECONDS", "int", default=10,
        maximum=300),
    Key("subscriber_lease_seconds", "MEETSYNC_SUBSCRIBER_LEASE_SECONDS", "int", default=30,
        maximum=3600),
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
        if key.kind in ("path", "db") and isinstance(value, str) and "://" not in value:
            value = str(where / Path(value).expanduser())
        core[_CORE_FIELDS.get(key.name, key.name)] = value

    accounts = _env_accounts(env, registry, problems)
    subscribers = _env_subscribers(env, problems)
    if source is not None:
        subscribers += _file_subscribers(document.get("subscribers", {}), source, env, registry,
                                         {s.name for s in subscribers}, problems)
    for name in document.keys() - {k.name for k in CORE_KEYS} - {"providers", "subscribers"}:
        problems.append(source.problem((name,), "is not a known setting"))  # type: ignore[union-attr]
    if source is not None:
        accounts += _file_accounts(document.get("providers", {}), source, env, registry,
                                   {a.key for a in accounts}, problems)
    if problems:
        raise SettingsError(*problems)
    return Settings(**core, accounts=tuple(accounts),  # type: ignore[arg-type]
                    subscribers=tuple(subscribers))


_SUBSCRIBER_SECRET = Key("secret", kind="secrets", secret=True, prefix="whsec_")
_SUBSCRIBER_URL = Key("url")
_SUBSCRIBER_LISTS = ("providers", "accounts", "types")


def _subscriber_problem(url: object, secrets: object) -> list[tuple[str, str]]:
    """What is wrong with a subscriber's ``url`` and ``secret`` (which key, what), without
    their values."""
    found = []
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            found.append(("url", "must be an http:// or https:// URL"))
    if isinstance(secrets, tuple):
        if not secrets:
            found.append(("secret", "must hold at least one whsec_ secret"))
        elif not all(_signing_key(secret) for secret in secrets):
            found.append(("secret", "must be whsec_ followed by base64 (every secret in it)"))
    return found


def _signing_key(secret: str) -> bool:
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except ValueError:
        return False


def _env_subscribers(env: Mapping[str, str], problems: list[str]) -> list[Subscriber]:
    """``MEETSYNC_SUBSCRIBER_URL`` + ``MEETSYNC_SUBSCRIBER_SECRET``: the subscriber ``default``."""
    url, secret = env.get("MEETSYNC_SUBSCRIBER_URL"), env.get("MEETSYNC_SUBSCRIBER_SECRET")
    if not url and not secret:
        return []
    if not url or not secret:
        problems.append("MEETSYNC_SUBSCRIBER_URL and MEETSYNC_SUBSCRIBER_SECRET must be set "
                        "together")
        return []
    secrets = _check(_SUBSCRIBER_SECRET, secret, "MEETSYNC_SUBSCRIBER_SECRET", problems,
                     from_env=True)
    wrong = _subscriber_problem(url.strip(), secrets)
    names = {"url": "MEETSYNC_SUBSCRIBER_URL", "secret": "MEETSYNC_SUBSCRIBER_SECRET"}
    problems.extend(f"{names[key]} {text}" for key, text in wrong)
    if wrong or not isinstance(secrets, tuple) or not secrets:
        return []
    return [Subscriber("default", url.strip(), secrets)]


def _file_subscribers(
    tables: object, source: _Source, env: Mapping[str, str], registry: Registry,
    taken: set[str], problems: list[str],
) -> list[Subscriber]:
    """``[subscribers.NAME]`` tables: ``url``, ``secret``, and optional filters."""
    if not isinstance(tables, dict):
        problems.append(source.problem(("subscribers",), "must be a table of [subscribers.NAME]"
                                                         " tables"))
        return []
    found = []
    for name, given in tables.items():
        where: tuple[str, ...] = ("subscribers", name)
        if not ACCOUNT_NAME.fullmatch(name):
            problems.append(source.problem(where, "must be named like [a-z0-9][a-z0-9_-]*"))
            continue
        if name in taken:
            problems.append(source.problem(
                where, "is also defined by the environment (MEETSYNC_SUBSCRIBER_URL)"))
            continue
        if not isinstance(given, dict):
            problems.append(source.problem(where, "must be a table"))
            continue
        before = len(problems)
        for extra in given.keys() - {"url", "secret", *_SUBSCRIBER_LISTS}:
            problems.append(source.problem((*where, extra), "is not a known setting"))
        for key in ("url", "secret"):
            if key not in given:
                problems.append(source.problem((*where, key), "must be set"))
        url = (source.value(_SUBSCRIBER_URL, given["url"], (*where, "url"), env, problems)
               if "url" in given else None)
        secrets = (source.value(_SUBSCRIBER_SECRET, given["secret"], (*where, "secret"), env,
                                problems) if "secret" in given else None)
        for key, text in _subscriber_problem(url, secrets):
            problems.append(source.problem((*where, key), text))
        lists: dict[str, tuple[str, ...]] = {}
        allowed = {"providers": tuple(registry), "accounts": None, "types": ENTITIES}
        for key in _SUBSCRIBER_LISTS:
            raw = given.get(key, [])
            choices = allowed[key]
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                problems.append(source.problem((*where, key), "must be a list of strings"))
            elif choices is not None and not set(raw) <= set(choices):
                problems.append(source.problem(
                    (*where, key), f"must name only {', '.join(choices)}"))
            else:
                lists[key] = tuple(raw)
        if len(problems) == before and isinstance(url, str) and isinstance(secrets, tuple):
            found.append(Subscriber(name, url, secrets, **lists))
    return found


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
        for problem in _incomplete(keys, values):
            problems.append(problem.format(*(key.env for key in keys)))
        accounts.append(Account(provider, "default", values))
    return accounts


def _incomplete(keys: tuple[Key, ...], values: Mapping[str, object]) -> list[str]:
    """A problem for each key set without the keys it only works ``together`` with; key
    names as ``{i}`` (the i-th key's), for the caller to spell as its user writes them."""
    index = {key.name: i for i, key in enumerate(keys)}
    problems = []
    for key in keys:
        missing = [name for name in key.together if not values.get(name)]
        if values.get(key.name) and missing:
            names = " and ".join(f"{{{index[name]}}}" for name in missing)
            verb = "is" if len(missing) == 1 else "are"
            problems.append(f"{{{index[key.name]}}} is set but {names} {verb} not: "
                            "they work only together")
    return problems


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
    for problem in _incomplete(keys, values):
        problems.append(source.problem(path, problem.format(*(key.name for key in keys))))
    return Account(provider, name, values)


def _default(key: Key) -> object:
    return () if key.kind in ("secrets", "list") else key.default


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
    if key.kind in ("secrets", "list"):  # a list: a TOML array, or comma-separated text
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
    if key.kind == "db" and "://" in text:
        return _database(text)
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


def _database(url: str) -> tuple[str | None, object]:
    """A ``MEETSYNC_DB`` URL: PostgreSQL's as it is, ``sqlite:///PATH`` as PATH (relative;
    ``sqlite:////PATH`` absolute, as SQLAlchemy spells them), any other refused: a file named
    after it would be created instead (the message never repeats the value: a password)."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return None, url
    if scheme == "sqlite" and rest.startswith("/") and rest.strip("/"):
        return None, rest[1:]
    return "must be a file path, sqlite:///PATH or a postgresql:// URL", None


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
    subscribers = {
        s.name: {"url": s.shown_url, "secret": _shown(_SUBSCRIBER_SECRET, s.secrets),
                 "providers": list(s.providers), "accounts": list(s.accounts),
                 "types": list(s.types)}
        for s in settings.subscribers
    }
    return {**core, "providers": providers, "subscribers": subscribers}


def _shown(key: Key, value: object) -> object:
    if value is None or value == ():
        return None
    if key.secret or key.kind == "secrets":
        count = len(value) if isinstance(value, tuple) else 1
        return "***" if count == 1 else f"*** ({count} secrets)"
    if key.kind == "list" and isinstance(value, tuple):
        return list(value)  # shown as the file writes it
    if key.kind in ("url", "path", "db") and isinstance(value, str):
        return masked_url(value)  # a postgresql:// MEETSYNC_DB may hold a password too
    return value


__all__ = ["CORE_KEYS", "Registry", "caller_dir", "config_path", "load_settings", "masked",
           "user_path"]
