"""The image's files say what docs/deploying.md promises: a non-root image with ``meetsync`` as its
entry point on a base given as a build argument, built in two stages (the final one installs
from the wheelhouse only), and a compose.yaml with PostgreSQL, Redis with AOF, a one-shot
migration, two receivers and two workers started in order. Building and running the image is
scripts/image_check.sh's (CI): this pins the files on any machine."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_dockerfile_is_two_stages_non_root_with_meetsync_as_entry_point() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE=python:3.12-slim")
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert stages == ["${BASE} AS builder", "${BASE}"]
    final = steps[[k for k, _ in steps].index("FROM", 2):]  # the final stage's instructions
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "--mount=type=bind,from=builder" in runs  # the wheels are never a layer
    assert "--no-index" in runs and "--find-links=/wheels" in runs
    builder = " ".join(rest for keyword, rest in steps[: len(steps) - len(final)])
    assert "pip wheel" in builder and "WHEELHOUSE" in builder
    [user] = [rest for keyword, rest in final if keyword == "USER"]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    assert ("ENTRYPOINT", '["meetsync"]') in final


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_runs_two_receivers_and_two_workers_after_a_migration() -> None:
    services = compose()["services"]
    commands = {name: service.get("command") for name, service in services.items()}
    assert sorted(n for n, c in commands.items() if c and c[0] == "serve") == [
        "receiver-1", "receiver-2"]
    assert sorted(n for n, c in commands.items() if c == ["worker"]) == ["worker-1", "worker-2"]
    assert commands["migrate"] == ["migrate"] and services["migrate"]["restart"] == "no"
    for name in ("receiver-1", "receiver-2", "worker-1", "worker-2"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
        assert services[name]["build"] == "." and services[name]["image"] == "meetsync:local"
        assert services[name]["environment"]["MEETSYNC_DB"].startswith("postgresql://")
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "receiver-1"))


def test_the_docs_point_to_compose_yaml_and_the_dockerfile_not_an_image_nobody_builds() -> None:
    deploying = (ROOT / "docs" / "deploying.md").read_text()
    section = deploying[deploying.index("## Running on several hosts"):]
    section = section[: section.index("\n## ", 10)]
    assert "](../compose.yaml)" in section and "](../Dockerfile)" in section
    assert "docker build" in section  # how the image is built, not only where it is used
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert "image: meetsync\n" not in doc.read_text(), doc.name


def test_the_wheelhouse_gaps_are_what_the_bases_python_needs_on_top(tmp_path: Path) -> None:
    # A wheel that needs async-timeout below 3.11.3 only (as redis does): missing for 3.11.2.
    metadata = ("Metadata-Version: 2.1\nName: needy\nVersion: 1.0\n"
                'Requires-Dist: async-timeout>=4.0.3; python_full_version < "3.11.3"\n'
                'Requires-Dist: never; python_version < "3.0"\n')
    with zipfile.ZipFile(tmp_path / "needy-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("needy-1.0.dist-info/METADATA", metadata)
    script = str(ROOT / "scripts" / "wheelhouse_gaps.py")

    def gaps(version: str) -> list[str]:
        out = subprocess.run([sys.executable, script, str(tmp_path), version], check=True,
                             capture_output=True, text=True).stdout
        return out.split()

    here = ".".join(map(str, sys.version_info[:3]))
    assert gaps(here) == []
    if sys.version_info >= (3, 11, 3):
        assert gaps("3.11.2") == ["async-timeout>=4.0.3"]
    assert gaps("3.11.3") == []
