"""The CI-sized soak: thousands of events through the real stack under chaos, a killed worker and
a restarted Redis end with nothing lost, the mirror matching the provider and no leaked secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_ci_soak_loses_nothing_converges_and_leaks_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--ci", "--keep", str(tmp_path)],
        capture_output=True, timeout=85, check=False,
    )
    report = orjson.loads(done.stdout)
    assert done.returncode == 0, report
    assert report["passed"]
    assert report["events_played"] >= 3000
    assert report["webhooks"]["failed"] == report["webhooks"]["rejected"] == 0
    assert report["webhooks"]["retried"] > 0, "Redis was down while deliveries were in flight"
    assert report["faults"]["worker_killed_at_chunk"] and report["faults"]["redis_down_seconds"]
    assert report["acknowledged_missing_from_mirror"] == 0
    assert report["dead_letters"] == report["faults"]["poison_events_injected"] > 0
    assert report["mismatches_after_reconcile"] == 0
    assert report["credential_leaks_in_logs"] == report["credential_leaks_in_stored_errors"] == 0
    assert report["duplicates_ignored"] >= report["webhooks"]["duplicated"]
