"""`meetsync demo` (the README's main command) converges and exits 0, with real processes."""

from __future__ import annotations

import subprocess
import sys


def test_demo_converges_on_a_small_workload() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meetsync.cli", "demo", "--appointments", "150", "--seed", "5"],
        capture_output=True, text=True, timeout=110, check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert lines[-1].startswith("converged: ")
    matched, total = lines[-1].removeprefix("converged: ").split()[0].split("/")
    assert matched == total and int(total) > 100
    assert "before reconcile:" in result.stdout and "reconciler: outcome success" in result.stdout
