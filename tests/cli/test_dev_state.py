"""`meetsync dev` keeps its generated secrets, token and Redis in a 0600 state file across
restarts, other commands find it there, and a second dev on the same directory is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meetsync.dev.redis_server import free_port
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.providers.savvycal.simulator.signing import native_headers
from tests.cli.conftest import Run, clean_env


class Dev:
    """One `meetsync dev` process in ``cwd``."""

    def __init__(self, cwd: Path, port: int) -> None:
        self.state = cwd / ".meetsync" / "dev.json"
        self.url = f"http://127.0.0.1:{port}"
        self.out = (cwd / "dev.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "meetsync.cli", "dev", "--port",
                                      str(port)], cwd=cwd, env=clean_env(),
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (cwd / "dev.log").read_text()
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("dev did not come up")

    def saved(self) -> dict[str, object]:
        found: dict[str, object] = json.loads(self.state.read_text())
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.out.close()


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[list[Dev]]:
    started: list[Dev] = []
    yield started
    for one in started:
        one.stop()


def test_dev_state_survives_a_restart_and_is_found_by_other_commands(
    tmp_path: Path, dev: list[Dev], meetsync: Run
) -> None:
    port = free_port()
    first = Dev(tmp_path, port)
    dev.append(first)
    saved = first.saved()
    assert first.state.stat().st_mode & 0o777 == 0o600
    secret = saved["generated"]["SAVVYCAL_WEBHOOK_SECRET"]  # type: ignore[index]
    body = SavvyCalSim(3).play(1)[0].body
    signed = native_headers(body, secret, "wh_dev")
    assert httpx.post(f"{first.url}/webhooks/savvycal", content=body,
                      headers=signed).status_code == 202

    stats = meetsync("stats")  # neither REDIS_URL nor MEETSYNC_DB is set
    assert stats.returncode == 0, stats.stderr
    assert "using the running `meetsync dev`" in stats.stderr
    assert set(json.loads(stats.stdout)) == {"queued", "counters"}
    appointment = SavvyCalSim(3).play(1)[0].appointment_id
    deadline = time.monotonic() + 20
    while (shown := meetsync("show", "appointment", appointment)).returncode != 0:
        assert time.monotonic() < deadline, shown.stderr  # dev's mirror, found through its state
        time.sleep(0.2)

    second = meetsync("dev", "--port", str(free_port()))
    assert second.returncode == 4
    assert second.stderr == (f"meetsync: another `meetsync dev` (pid {first.proc.pid}) is running "
                             f"with {tmp_path / '.meetsync'}: stop it, or give this one its own "
                             "--data-dir\n")

    first.stop()
    assert first.proc.returncode == 0
    assert meetsync("stats").returncode == 3  # no dev running: REDIS_URL must be set

    again = Dev(tmp_path, port)
    dev.append(again)
    assert again.saved()["generated"] == saved["generated"]
    assert again.saved()["redis_url"] == saved["redis_url"]  # its port was free again
    assert httpx.post(f"{again.url}/webhooks/savvycal", content=body,
                      headers=signed).status_code == 202  # yesterday's secret still verifies
    log = (tmp_path / "dev.log").read_text()
    assert log.count(secret) == 1  # printed once, when generated
    assert "reusing the secrets generated earlier" in log
