"""The web process's ``/metrics`` (``meetsync serve``, a process of its own) leaves out the
applier's series: only a process that applies events fills them, so there they would read 0
forever. A worker exports them (tests/worker/test_worker_metrics.py), and so does a process
that runs an applier beside the app, as ``meetsync dev`` does (tests/webhooks/test_metrics.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from meetsync.demo.stack import wait_ready
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.metrics import APPLY_SERIES
from tests.faults.conftest import Processes, stack_env
from tests.helpers.savvycal import savvycal_settings

APPLIER = {"meetsync_apply_batch_size", "meetsync_apply_batch_duration_seconds",
           "meetsync_events", "meetsync_dead_letters", "meetsync_store_busy_waits"}


async def test_serve_exports_no_series_only_workers_fill(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    assert {family.name for series in APPLY_SERIES for family in series.collect()} == APPLIER
    settings = savvycal_settings(db_path=str(tmp_path / "mirror.db"), redis_url=redis_server.url,
                                 savvycal_webhook_secrets=("web-metrics-secret",),
                                 read_token="web-metrics-read-token")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes = Processes(tmp_path)
    web = processes.spawn("serve", stack_env(settings, PORT=str(port)), "web")
    try:
        await wait_ready(url, web)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/webhooks/savvycal", content=b"{}")).status_code == 401
            scrape = await http.get("/metrics")
    finally:
        processes.stop_all()
    assert scrape.status_code == 200
    families = {family.name for family in text_string_to_metric_families(scrape.text)}
    assert {"meetsync_webhook_deliveries", "meetsync_queue_depth"} <= families
    assert families & APPLIER == set()
