"""Installing meetsync puts one package, ``meetsync``, into site-packages, and the code imports
its own parts only through it (a downstream app may have a module named ``store``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BARE = re.compile(r"^\s*(from|import) (store|worker|webhooks|simulator)\b", re.MULTILINE)


def test_code_imports_its_parts_through_the_meetsync_namespace() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("meetsync", "store", "worker", "webhooks", "tests", "bench", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if BARE.search(path.read_text())
    ]
    assert offenders == []


def test_the_wheel_holds_only_the_meetsync_package(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves a build/ folder beside the sources it builds.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "__pycache__", "*.db*", ".hypothesis", ".meetsync"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(source)],
        check=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("meetsync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"meetsync"}
    for module in ("store/mirror.py", "worker/applier.py", "webhooks/receiver.py",
                   "providers/savvycal/simulator/api.py"):
        assert f"meetsync/{module}" in names


def test_a_downstream_app_with_its_own_store_module_reads_the_mirror(tmp_path: Path) -> None:
    from meetsync.events import Event, Meeting
    from meetsync.store import open_store

    with open_store(tmp_path / "meetsync.db") as store:
        store.apply([Event(id="evt_1", provider="savvycal", type="appointment.created",
                           occurred_at=1, appointment_id="appt_1", end_at="2099-01-01T00:00:00Z",
                           meeting=Meeting(id="amtg_1", status="created"))])
    app = tmp_path / "app"
    app.mkdir()
    (app / "store.py").write_text("MINE = True\n")
    (app / "worker.py").write_text("MINE = True\n")
    script = (
        "import store, worker\n"
        "from meetsync import open_mirror\n"
        "assert store.MINE and worker.MINE\n"
        f"with open_mirror({str(tmp_path / 'meetsync.db')!r}) as mirror:\n"
        "    print(mirror.current_meeting('appt_1')['id'])\n"
    )
    # Run from the app's folder, outside the repository: only the installed package is seen.
    done = subprocess.run([sys.executable, "-c", script], cwd=app, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "amtg_1"
