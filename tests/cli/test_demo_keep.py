"""`meetsync demo --keep DIR` (DIR relative to the caller) keeps the mirror and the stack's log
at the path it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import Run


@pytest.mark.timeout(240)  # a demo: up to ~80 s beside the suite's other workers
def test_the_kept_log_is_where_the_demo_says(tmp_path: Path, meetsync: Run) -> None:
    done = meetsync("demo", "--appointments", "40", "--keep", "kept", timeout=230,
                    MEETSYNC_CALLER_DIR=str(tmp_path), LOG_LEVEL="")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = re.search(r"\(logs: (\S+)\)", done.stdout)
    assert found, done.stdout
    log = Path(found.group(1))
    assert log == tmp_path / "kept" / "stack.log"
    assert log.stat().st_size > 0 and (tmp_path / "kept" / "mirror.db").exists()
