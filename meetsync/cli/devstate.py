"""``meetsync dev``'s state directory: what it generated, kept across restarts, and a lock.

``dev.json`` (0600) holds the webhook secrets and read token dev made up, its Redis URL and
mirror; the next ``dev`` reuses them, so a webhook signed yesterday still verifies, and other
commands find a running stack through it (``apply_running``: every command reads it the same
way). A password of the environment's (a ``REDIS_URL`` or a ``postgresql://`` MEETSYNC_DB that
holds one) is never written there: it stays in the environment, where the commands beside dev
find it too. ``dev.lock`` is held (``flock``) while dev runs: a
second ``dev`` on the same directory (and the same Redis data) is refused.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meetsync.cli.errors import Unavailable
from meetsync.redact import has_password
from meetsync.settings import Account, Key, Settings, SettingsError


@dataclass(frozen=True)
class DevState:
    directory: Path

    @property
    def file(self) -> Path:
        return self.directory / "dev.json"

    @property
    def lock_file(self) -> Path:
        return self.directory / "dev.lock"

    def read(self) -> dict[str, Any]:
        try:
            found = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def write(self, state: dict[str, Any]) -> None:
        """Replace ``dev.json`` atomically; the file is created readable by its owner only."""
        tmp = self.file.with_suffix(".tmp")
        with suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
        os.replace(tmp, self.file)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory for this ``dev``; refuse if another holds it."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self.read().get("pid", "unknown")
                raise Unavailable(
                    f"another `meetsync dev` (pid {holder}) is running with {self.directory}: "
                    "stop it, or give this one its own --data-dir"
                ) from None
            yield
        finally:
            os.close(fd)

    def running(self) -> dict[str, Any] | None:
        """The running dev stack's state, or None when no ``dev`` holds the lock."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.read() or None
        finally:
            os.close(fd)
        return None


def stored_db(db: str) -> dict[str, Any]:
    """What ``dev.json`` keeps of the mirror: its path or URL, unless that holds a password
    (then only the fact that it comes from the environment's ``MEETSYNC_DB``)."""
    if has_password(db):
        return {"db_path": None, "db_from_env": True}
    return {"db_path": db}


def apply_running(settings: Settings, running: dict[str, Any], default_db: str) -> Settings:
    """``settings`` completed by a running ``dev``'s state, as every command beside it sees
    them: its Redis and mirror where ``REDIS_URL``/``MEETSYNC_DB`` are unset, its generated
    webhook secrets and read token where none is configured."""
    from dataclasses import replace

    db = settings.db_path
    if db == default_db:
        if running.get("db_from_env"):
            raise SettingsError("MEETSYNC_DB must be set as for the running `meetsync dev`: "
                                "its URL holds a password, which dev.json does not keep")
        db = running.get("db_path") or default_db
    settings = replace(settings, redis_url=settings.redis_url or running.get("redis_url"),
                       db_path=db)
    return dev_settings(settings, running, generate=False)[0]


def dev_settings(settings: Settings, saved: dict[str, Any], *,
                 generate: bool = True) -> tuple[Settings, dict[str, str]]:
    """Fill what a developer's machine lacks: webhook secrets for a provider with none, and a
    read token. Values saved by an earlier run are reused; returns what was made up or reused,
    by variable name (values from the environment never are). Without ``generate`` only the
    saved values fill in (a command beside a running dev)."""
    previous: dict[str, str] = saved.get("generated") or {}
    made: dict[str, str] = {}

    def value(name: str, fresh: str) -> str | None:
        found = previous.get(name) or (fresh if generate else None)
        if found is not None:
            made[name] = found
        return found

    from meetsync.providers.keys import PROVIDER_KEYS  # on use: slow to import

    for provider, keys in PROVIDER_KEYS.items():
        hooks = [key for key in keys if key.webhook and key.env]
        accounts = settings.accounts_of(provider)
        if not hooks or any(a.secrets(k.name) for a in accounts for k in hooks):
            continue
        current = settings.account(provider)
        values = dict(current.values) if current else {
            k.name: () if k.kind == "secrets" else k.default for k in keys}
        filled = False
        for key in hooks:
            secret = value(key.env or key.name, _new_secret(key))
            if secret is not None:
                values[key.name] = (secret,)
                filled = True
        if filled:
            settings = settings.with_account(Account(provider, "default", values))
    if not settings.read_token:
        token = value("MEETSYNC_READ_TOKEN", secrets.token_urlsafe(24))
        if token is not None:
            from dataclasses import replace

            settings = replace(settings, read_token=token)
    return settings, made


def _new_secret(key: Key) -> str:
    if key.prefix:  # e.g. whsec_: a prefixed secret is base64 (Standard Webhooks)
        return key.prefix + base64.b64encode(secrets.token_bytes(24)).decode()
    return secrets.token_hex(16)
