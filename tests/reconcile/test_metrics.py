"""A reconcile run counts itself by provider, account and outcome, its drift by field, and
every API attempt by status (a 429 included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import REGISTRY

from meetsync.providers.savvycal.simulator import SavvyCalSim

MakeHarness = Callable[..., Any]
ACCOUNT = {"provider": "savvycal", "account": "default"}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_run_and_its_api_calls_are_counted(
    sim: SavvyCalSim, harness: MakeHarness
) -> None:
    def first_is_rate_limited(_request: httpx.Request, n: int) -> int | None:
        return 429 if n == 1 else None

    h = harness(faults=first_is_rate_limited)
    sim.book(minutes=30)  # the mirror never heard of it: drift "missing"
    names = ("meetsync_reconcile_runs_total", "meetsync_reconcile_drift_total",
             "meetsync_reconcile_repaired_total", "meetsync_provider_api_requests_total",
             "meetsync_reconcile_duration_seconds_count")
    labels = ({**ACCOUNT, "outcome": "success"}, {**ACCOUNT, "field": "missing"}, ACCOUNT,
              {**ACCOUNT, "code": "429"}, ACCOUNT)
    before = [sample(name, **label) for name, label in zip(names, labels, strict=True)]
    ok_before = sample("meetsync_provider_api_requests_total", **ACCOUNT, code="200")

    report = await h.reconciler().run()

    assert report.outcome == "success" and report.drift["missing"] >= 1
    after = [sample(name, **label) for name, label in zip(names, labels, strict=True)]
    runs, missing, repaired, limited, timed = (a - b for a, b in zip(after, before, strict=True))
    assert (runs, limited, timed) == (1, 1, 1)
    assert missing == report.drift["missing"] and repaired == report.repaired
    assert (sample("meetsync_provider_api_requests_total", **ACCOUNT, code="200") - ok_before
            == report.api_calls - 1)
    assert sample("meetsync_reconcile_last_run_timestamp_seconds",
                  **ACCOUNT, outcome="success") > 0
