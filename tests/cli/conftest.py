"""Run ``meetsync`` as a user would: a subprocess, a clean environment, a directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Variables a developer's shell may carry that would change what these tests see.
_OURS = ("MEETSYNC_", "REDIS_URL", "SAVVYCAL_", "STANDARD_WEBHOOK_SECRET", "PORT", "LOG_LEVEL",
         "RECONCILE_INTERVAL_SECONDS")

Run = Callable[..., subprocess.CompletedProcess[str]]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return {**env, "LOG_LEVEL": "WARNING", **extra}


@pytest.fixture
def meetsync(tmp_path: Path) -> Run:
    """``meetsync(*args, **env)``: the command, run in ``tmp_path``, output captured."""

    def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "meetsync.cli", *args], cwd=tmp_path,
                              env=clean_env(**env), capture_output=True, text=True,
                              timeout=timeout, check=False)

    return run
