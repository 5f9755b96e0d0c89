"""Start a private PostgreSQL server for the tests, the soak and the benchmarks.

The binaries are the first of: ``initdb``/``postgres`` on PATH, Debian's newest
``/usr/lib/postgresql/*/bin``, the ones shipped in the ``pgserver`` wheel (a test dependency),
so a fresh machine needs nothing but ``pip install``. Nothing here touches a PostgreSQL the
machine may already run: the server listens on a free port of 127.0.0.1 and on a socket in its
own directory.

PostgreSQL refuses to run as root: as root, the cluster is owned by and run as ``postgres``
(when that user exists) or ``nobody``, in a directory of its own under the system's temporary
directory (the caller's may not be reachable by that user).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from meetsync.dev.redis_server import free_port

MISSING = (
    "no PostgreSQL server binaries found: put initdb and postgres on PATH, install Debian's "
    "postgresql package, or `pip install pgserver`"
)


class PostgresStartError(RuntimeError):
    """No PostgreSQL binaries, or the server did not come up."""


def binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (see the module docstring)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda d: int(Path(d).parent.name), reverse=True):
        if os.access(Path(directory) / "initdb", os.X_OK):
            return Path(directory)
    spec = importlib.util.find_spec("pgserver")
    for location in (spec and spec.submodule_search_locations) or ():
        candidate = Path(location) / "pginstall" / "bin"
        if os.access(candidate / "initdb", os.X_OK):
            return candidate
    raise PostgresStartError(MISSING)


@dataclass
class PostgresServer:
    """A PostgreSQL server child process on 127.0.0.1; ``fsync`` off unless ``durable``
    (a restart or a killed server loses nothing either way: only the machine's crash would)."""

    base_dir: Path
    port: int = field(default_factory=free_port)
    durable: bool = False
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            name = "postgres" if _user_exists("postgres") else "nobody"
            self._user = pwd.getpwnam(name)
            self.base_dir = Path(tempfile.mkdtemp(prefix="meetsync-pg-"))
            self.base_dir.chmod(0o711)
            os.chown(self.base_dir, self._user.pw_uid, self._user.pw_gid)
        self.bin = binaries()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.pw_gid

    def start(self) -> PostgresServer:
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                check=True, capture_output=True, cwd=self.base_dir, user=self._uid, group=self._gid,
            )
        settings = {
            "listen_addresses": "127.0.0.1", "port": str(self.port),
            "unix_socket_directories": str(self.base_dir), "max_connections": "200",
            "fsync": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        args = [str(self.bin / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        log = open(self.base_dir / "server.log", "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.base_dir,
                                        user=self._uid, group=self._gid)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise PostgresStartError(
            f"PostgreSQL did not come up on port {self.port}: see {self.base_dir}/server.log")

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new empty database (or a copy of ``template``); returns its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.database_url(name)

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends exit with it): a crash, recovered on start."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None
            # The orphaned backends notice the postmaster is gone within a moment.
            time.sleep(0.5)

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, the server exits cleanly."""
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
