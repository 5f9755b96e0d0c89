"""``meetsync dev``'s state directory: what it generated, kept across restarts, and a lock.

``dev.json`` (0600) holds the webhook secrets and read token dev made up, its Redis URL and
mirror; the next ``dev`` reuses them, so a webhook signed yesterday still verifies, and other
commands find a running stack through it. ``dev.lock`` is held (``flock``) while dev runs: a
second ``dev`` on the same directory (and the same Redis data) is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meetsync.cli._common import Unavailable


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
