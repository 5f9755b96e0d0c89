"""The benchmark harness still runs: its cheapest stages at --quick size, and its report."""

from __future__ import annotations

from pathlib import Path

from bench import report, wrk
from bench.common import Options
from bench.stages import apply, queueing

WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:8000/webhooks/savvycal
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.70ms  642.00us  12.01ms   91.00%
  Latency Distribution
     50%    1.57ms
     75%    1.80ms
     90%    2.20ms
     99%   3.89ms
  19203 requests in 1.00s, 1.50MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  19203.00
"""


def test_wrk_summary_is_read() -> None:
    result = wrk.parse(WRK_OUTPUT)
    assert (result.requests, result.non_2xx, result.errors) == (19203, 3, 0)
    assert (result.p50_ms, result.p99_ms) == (1.57, 3.89)


def test_quick_apply_and_queueing_stages_run_and_report(tmp_path: Path) -> None:
    options = Options(quick=True, workdir=tmp_path)
    results = [apply.run(options), queueing.run(options)]
    figures = [figure for result in results for figure in result.figures]
    assert [f.name for f in figures] == [
        "apply", "queue: one at a time", "queue: arq worker ceiling", "queue: 4 partitions vs 1"
    ]
    assert all(f.ours > 0 for f in figures)
    text = report.render(results, {"cores": "2"}, quick=True, command="python -m bench --quick",
                         seconds=1.0, workdir=tmp_path)
    assert "| apply | events/s |" in text and "--quick run" in text
    assert str(tmp_path) not in text
