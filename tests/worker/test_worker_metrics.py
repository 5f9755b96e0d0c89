"""`meetsync worker` serves its metrics over HTTP on MEETSYNC_WORKER_METRICS_PORT: applied
batches and each account's request budget, and stops serving when it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from meetsync.dev.redis_server import RedisServer
from tests.worker.test_worker_process import publish, wait_applied


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str, patience: float = 20) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    deadline = time.monotonic() + patience
    while True:
        try:
            response = httpx.get(url, timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_worker_metrics_over_http(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", persistent=False).start()
    db = tmp_path / "mirror.db"
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "MEETSYNC_DB": str(db), "LOG_LEVEL": "WARNING",
           "MEETSYNC_WORKER_METRICS_PORT": str(port), "SAVVYCAL_API_TOKEN": "api-token-x",
           "SAVVYCAL_API_URL": "http://127.0.0.1:9/v1", "SAVVYCAL_API_REQUESTS_PER_MINUTE": "120"}
    url = f"http://127.0.0.1:{port}/metrics"
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "meetsync.cli", "worker"], env=env,
                                  stdout=log, stderr=log)
        try:
            publish(server.url, "evt_metrics_worker", 1)
            wait_applied(db, "evt_metrics_worker")
            deadline = time.monotonic() + 10
            while True:  # the batch is counted just after its commit
                figures = scrape(url)
                applied = figures.get(("meetsync_events_total",
                                       frozenset({("result", "applied")})), 0)
                if applied >= 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert applied == 1
            assert figures[("meetsync_apply_batch_size_count", frozenset())] >= 1
            account = frozenset({("provider", "savvycal"), ("account", "default")})
            assert figures[("meetsync_provider_budget_limit", account)] == 120
            assert figures[("meetsync_provider_budget_available", account)] == 120
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            finally:
                if worker.poll() is None:
                    worker.kill()
                server.stop()
    assert worker.returncode == 0
    log_text = (tmp_path / "worker.log").read_text()
    assert "api-token-x" not in log_text
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the metrics port still answers after the worker stopped")
