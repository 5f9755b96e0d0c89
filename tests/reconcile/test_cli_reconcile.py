"""`meetsync reconcile --once` repairs the mirror from a provider over HTTP and prints the run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from meetsync import cli
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator import Chaos, serve_in_background
from meetsync.simulator.delivery import plan


@pytest.mark.usefixtures("restore_logging")
def test_reconcile_once_converges_and_reports(
    kit: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The command stamps snapshots with the real clock: the provider's history is behind it.
    sim = SavvyCalSim(8, start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    order, dropped, _ = plan(sim.play(30), Chaos(drop=0.3), random.Random(8))
    assert dropped
    db_path = tmp_path / "mirror.db"
    with serve_in_background(sim.asgi_app()) as root:
        kit.apply_webhooks(db_path, order)
        for name, value in {
            "MEETSYNC_DB": str(db_path), "SAVVYCAL_API_URL": f"{root}/v1",
            "SAVVYCAL_API_TOKEN": sim.token, "LOG_LEVEL": "WARNING",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("SAVVYCAL_ACCOUNT_ID", raising=False)
        sim.now = datetime.now(UTC)  # the provider's clock, for the comparison's window
        assert cli.main(["reconcile", "--once"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["outcome"] == "success" and summary["drifted"] > 0
    assert summary["repaired"] == summary["drifted"]
    assert summary["api_calls"] == summary["pages"] == 1
    kit.assert_mirror_matches(sim, db_path)
    assert kit.last_run(db_path)["outcome"] == "success"
