"""The layout's rules, from the code's own imports: no circle, no arrow back up the layers
(``scripts/imports.py`` draws them), and the receiver's process never loads the worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_graph_has_no_circle_and_no_arrow_back_up() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "imports.py")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "circles 0, arrows back up 0" in done.stdout


def test_the_receiver_loads_neither_the_worker_nor_arq() -> None:
    probe = ("import sys, meetsync.webhooks.app; "
             "print(sorted(m for m in sys.modules if m.startswith(('arq', 'meetsync.worker'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
