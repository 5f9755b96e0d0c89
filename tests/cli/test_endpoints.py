"""``meetsync endpoints`` names the URL to register per provider account; ``endpoints test``
against the running stack (``serve`` and ``worker`` processes, a real Redis) says which hop
failed: none (exit 0), the secret (401, exit 1), the worker (queued, never applied, exit 1),
the URL (unreachable, exit 4)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from meetsync.dev.redis_server import RedisServer, free_port
from tests.cli.conftest import Run, clean_env

TOKEN = "endpoints-read-token"


@pytest.fixture
def stack_env(tmp_path: Path, redis_server: RedisServer) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "MEETSYNC_DB": str(tmp_path / "mirror.db"),
            "MEETSYNC_READ_TOKEN": TOKEN, "SAVVYCAL_WEBHOOK_SECRET": "native-secret",
            "ZOOM_WEBHOOK_SECRET_TOKEN": "zoom-token", "RECONCILE_INTERVAL_SECONDS": "86400"}


def spawn(command: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "meetsync.cli", command], cwd=cwd,
                            env=clean_env(**env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def serve(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = spawn("serve", {**stack_env, "PORT": str(port)}, tmp_path)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "serve exited at start-up"
            try:
                if httpx.get(f"{root}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        yield root
    finally:
        stop(proc)


def test_lists_the_url_and_steps_per_account(meetsync: Run, stack_env: dict[str, str]) -> None:
    done = meetsync("endpoints", "--public-url", "https://hooks.example.com/", "--json",
                    **stack_env)
    assert done.returncode == 0, done.stderr
    rows = {row["provider"]: row for row in orjson.loads(done.stdout)}
    assert rows["savvycal"]["url"] == "https://hooks.example.com/webhooks/savvycal"
    assert rows["zoom"]["url"] == "https://hooks.example.com/webhooks/zoom"
    assert all(row["steps"] and row["webhooks"] for row in rows.values())
    text = meetsync("endpoints", "--public-url", "https://hooks.example.com", **stack_env)
    assert "https://hooks.example.com/webhooks/zoom" in text.stdout
    assert meetsync("endpoints", "--public-url", "ftp://x", **stack_env).returncode == 2
    assert meetsync("endpoints").returncode == 3  # nothing configured


def test_self_test_names_the_failing_hop(
    meetsync: Run, serve: str, stack_env: dict[str, str], tmp_path: Path
) -> None:
    args = ("endpoints", "test", "--public-url", serve, "--json")
    # no worker yet: verified and queued, never applied
    down = meetsync(*args, "--provider", "savvycal", "--wait", "2", **stack_env)
    assert down.returncode == 1, down.stderr
    assert [r["stage"] for r in orjson.loads(down.stdout)] == ["worker"]

    wrong = meetsync(*args, "--provider", "savvycal",
                     **{**stack_env, "SAVVYCAL_WEBHOOK_SECRET": "not-the-secret"})
    assert wrong.returncode == 1
    assert [r["stage"] for r in orjson.loads(wrong.stdout)] == ["signature"]

    gone = meetsync("endpoints", "test", "--public-url", f"http://127.0.0.1:{free_port()}",
                    **stack_env)
    assert gone.returncode == 4 and "unreachable" in gone.stdout

    worker = spawn("worker", stack_env, tmp_path)
    try:
        done = meetsync(*args, "--wait", "30", **stack_env)
        assert done.returncode == 0, done.stdout + done.stderr
        results = orjson.loads(done.stdout)
        assert {r["provider"] for r in results} == {"savvycal", "zoom"}
        assert all(r["stage"] == "applied" for r in results)
        again = meetsync(*args, "--provider", "zoom", "--wait", "30", **stack_env)
        assert again.returncode == 0, again.stdout  # a second run is applied as well
    finally:
        stop(worker)
