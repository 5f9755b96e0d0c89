"""`./run.sh` with no command, or one it does not know, prints its usage and exits 2 before it
looks for Python or installs anything; the commands it knows are the CLI's own."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from meetsync.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_run_sh_knows_exactly_the_clis_commands() -> None:
    text = (ROOT / "run.sh").read_text()
    [listed] = re.findall(r"^\s*(test\|lint\|[\w|-]+)\|-\*\)$", text, re.MULTILINE)
    assert sorted(listed.split("|")) == sorted(["test", "lint", *cli.commands])


@pytest.mark.parametrize("args", [[], ["nonsense"], ["demo nonsense"]])
def test_an_empty_or_unknown_command_prints_the_usage_before_any_install(
    args: list[str],
) -> None:
    # A Python that does not exist: reaching the Python check would say so instead.
    env = {**os.environ, "MEETSYNC_PYTHON": "/nonexistent/python3"}
    done = subprocess.run(["bash", str(ROOT / "run.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: ./run.sh demo|test|lint"), done.stderr
    assert "/nonexistent" not in done.stderr
