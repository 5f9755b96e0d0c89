"""The benchmark harness still runs: its cheapest stages at --quick size, and its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report, wrk
from bench.common import Figure, Options, StageResult
from bench.stages import apply, memory, pg_apply, pg_driver, queueing

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
# A stage measures real work (processes, servers, thousands of writes): 30 s alone, nearer
# 120 s beside the suite's other workers on a busy 2-core machine. The timeout stops a hung one.
STAGE_TIMEOUT = pytest.mark.timeout(300)


def test_wrk_summary_is_read() -> None:
    result = wrk.parse(WRK_OUTPUT)
    assert (result.requests, result.non_2xx, result.errors) == (19203, 3, 0)
    assert (result.p50_ms, result.p99_ms) == (1.57, 3.89)


@STAGE_TIMEOUT
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


@STAGE_TIMEOUT
def test_quick_postgres_stages_run_and_report(tmp_path: Path) -> None:
    """The driver comparison and the one-worker apply run against a private PostgreSQL."""
    options = Options(quick=True, workdir=tmp_path)
    driver, applied = pg_driver.run(options), pg_apply.run(options)
    names = [f.name for f in driver.figures]
    assert "pg driver: psycopg, executemany (pipeline mode)" in names
    assert [f.name for f in applied.figures] == ["pg apply: 1 worker"]
    assert all(f.ours > 0 and f.ratio for f in driver.figures + applied.figures)
    assert applied.details[0].startswith("| case | workers |")


@STAGE_TIMEOUT
def test_quick_cost_curve_runs_on_both_mirrors(tmp_path: Path) -> None:
    """The memory stage follows one worker per mirror, SQLite and PostgreSQL, over its
    checkpoints."""
    result = memory.run(Options(quick=True, workdir=tmp_path))
    assert [f.name for f in result.figures] == [
        "memory", "cost curve: SQLite", "memory: PostgreSQL", "cost curve: PostgreSQL",
        "cost curve: PostgreSQL vs SQLite",
    ]
    assert all(f.ours > 0 for f in result.figures)
    assert len(result.details) == 2 + 2 * len(memory.QUICK_CHECKPOINTS)


def test_an_only_run_replaces_its_own_section_and_keeps_the_rest(tmp_path: Path) -> None:
    """``python -m bench --only X`` rewrites X's section of BENCHMARKS.md, nothing else."""
    command = "python -m bench --only apply"
    results = [StageResult("apply", figures=[Figure("apply", "events/s", 10.0, 100.0)])]

    def section(ours: float) -> str:
        results[0].figures[0].ours = ours
        return report.section(results, {"cores": "2"}, command=command, seconds=1.0,
                              workdir=tmp_path, day="2026-11-29")

    first = report.merge("# Benchmarks\n\nby hand\n", section(10.0), command)
    second = report.merge(first + "\n## later, by hand\n", section(20.0), command)
    assert "| apply | events/s | 100 | 10.0 | 0.10 |" in first
    assert "| apply | events/s | 100 | 20.0 | 0.20 |" in second and "0.10" not in second
    assert second.startswith("# Benchmarks\n\nby hand\n") and "## later, by hand" in second
    assert second.count("<!-- begin: python -m bench --only apply") == 1
