"""`meetsync dev` leaves no second Redis on its data directory (a SIGKILLed dev's server dies
with it, or the next dev ends it), every command beside a running dev sees its generated
settings, and a PostgreSQL password given to dev is neither printed nor written to dev.json."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from meetsync.dev.pg_server import PostgresServer
from meetsync.dev.redis_server import RedisServer, RedisStartError, free_port, stop_orphan
from tests.cli.conftest import Run, clean_env

PASSWORD = "dev-pg-pa55word-planted"
_roles = itertools.count()


class Dev:
    """One `meetsync dev` process in ``cwd``, its output in ``cwd/dev.log``."""

    def __init__(self, cwd: Path, port: int, **env: str) -> None:
        self.log = cwd / "dev.log"
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "meetsync.cli", "dev", "--port", str(port)], cwd=cwd,
                env=clean_env(**env), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("dev did not come up")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


@pytest.fixture
def devs() -> Iterator[list[Dev]]:
    started: list[Dev] = []
    yield started
    for one in started:
        one.stop()


def servers_on(directory: Path) -> list[int]:
    """The live Redis/Valkey server processes working in ``directory`` (a server chdirs into
    its ``--dir``; it rewrites its command line, so that cannot tell)."""
    wanted = directory.resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        # Debian's redis-server is a link to redis-check-rdb: the name says which it runs as
        if state != "Z" and cwd == wanted and Path(exe).name.startswith(("redis", "valkey")):
            found.append(int(entry.name))
    return found


def test_a_second_server_on_one_directory_is_refused_and_an_orphan_is_stopped(
    tmp_path: Path
) -> None:
    directory = tmp_path / "redis"
    first = RedisServer(data_dir=directory).start()
    assert first.process is not None
    try:
        with pytest.raises(RedisStartError, match="already serves"):
            RedisServer(data_dir=directory).start()
        assert servers_on(directory) == [first.process.pid]
        assert stop_orphan(directory) == first.process.pid
        assert first.process.wait(timeout=10) == 0  # SIGTERM: a clean shutdown, AOF flushed
        second = RedisServer(data_dir=directory).start()
        try:
            assert second.process is not None
            assert servers_on(directory) == [second.process.pid]
        finally:
            second.stop()
    finally:
        first.stop()
    assert stop_orphan(directory) is None and servers_on(directory) == []


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads /proc")
def test_a_killed_dev_leaves_one_redis_and_commands_beside_dev_use_its_settings(
    tmp_path: Path, devs: list[Dev], meetsync: Run
) -> None:
    directory = tmp_path / ".meetsync" / "redis"
    port = free_port()
    first = Dev(tmp_path, port)
    devs.append(first)
    assert len(servers_on(directory)) == 1
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)

    again = Dev(tmp_path, port)
    devs.append(again)
    deadline = time.monotonic() + 10
    while len(running := servers_on(directory)) != 1:
        assert time.monotonic() < deadline, running
        time.sleep(0.1)
    state = json.loads((tmp_path / ".meetsync" / "dev.json").read_text())
    client = redis.Redis.from_url(state["redis_url"])
    try:
        assert client.info("server")["process_id"] == running[0]
    finally:
        client.close()

    # Beside the running dev, with nothing set: its secrets, token, Redis and mirror.
    checked = meetsync("config", "check", "--json")
    assert checked.returncode == 0, checked.stderr
    shown = json.loads(checked.stdout)
    assert shown["providers"]["savvycal"]["default"]["webhook_secret"] == "***"
    assert shown["read_token"] == "***"
    listed = meetsync("endpoints", "--public-url", again.url)
    assert listed.returncode == 0, listed.stderr
    assert f"{again.url}/webhooks/savvycal" in listed.stdout
    tested = meetsync("endpoints", "test", "--public-url", again.url, "--provider", "savvycal")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "applied" in tested.stdout
    for secret in state["generated"].values():
        assert secret not in checked.stdout + listed.stdout + tested.stdout


@pytest.fixture
def pg_secret_url(pg_server: PostgresServer) -> str:
    role = f"meetsync_dev_{next(_roles)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE {role} OWNER {role}")
    return f"postgresql://{role}:{PASSWORD}@127.0.0.1:{pg_server.port}/{role}"


def test_dev_on_postgresql_neither_prints_nor_stores_the_password(
    tmp_path: Path, devs: list[Dev], meetsync: Run, pg_secret_url: str
) -> None:
    devs.append(Dev(tmp_path, free_port(), MEETSYNC_DB=pg_secret_url, LOG_LEVEL="INFO"))
    beside = meetsync("show", "appointment", "appt_x", MEETSYNC_DB=pg_secret_url)
    assert beside.returncode == 1, beside.stderr  # dev's mirror, read: not found
    unset = meetsync("show", "appointment", "appt_x")
    assert unset.returncode == 3
    assert unset.stderr.splitlines()[-1].startswith("meetsync: MEETSYNC_DB must be set")
    devs[0].stop()
    written = [path.read_bytes() for path in (tmp_path / ".meetsync").rglob("*")
               if path.is_file()]
    log = (tmp_path / "dev.log").read_text()
    assert ":***@" in log  # the banner names the mirror, masked
    for text in (log, beside.stdout + beside.stderr, unset.stdout + unset.stderr):
        assert PASSWORD not in text
    assert not any(PASSWORD.encode() in data for data in written)
    assert os.stat(tmp_path / ".meetsync" / "dev.json").st_mode & 0o777 == 0o600
