"""`meetsync demo` (the README's first command) converges and exits 0, with real processes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

# A demo takes 20-70 s on a busy 2-core machine next to the suite's other workers; the timeouts
# stop a hung one, at over twice that.
DEMO_SECONDS = 230
pytestmark = pytest.mark.timeout(DEMO_SECONDS + 10)


def test_demo_converges_on_a_small_workload() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meetsync.cli", "demo", "--appointments", "150", "--seed", "5"],
        capture_output=True, text=True, timeout=DEMO_SECONDS, check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert lines[-1].startswith("converged: ")
    matched, total = lines[-1].removeprefix("converged: ").split()[0].split("/")
    assert matched == total and int(total) > 100
    assert "before reconcile:" in result.stdout and "reconciler: outcome success" in result.stdout


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "meetsync.cli", "demo", *args],
        capture_output=True, text=True, timeout=DEMO_SECONDS, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result


def converged(stdout: str) -> list[tuple[int, int, str]]:
    """Every ``converged: X/Y <what> match the provider`` line, as (X, Y, what)."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("converged: "):
            ratio, *what = line.removeprefix("converged: ").split()
            matched, total = ratio.split("/")
            found.append((int(matched), int(total), " ".join(what)))
    return found


def test_savvycal_alone_says_nothing_of_zoom() -> None:
    result = demo("--provider", "savvycal", "--appointments", "60", "--seed", "2")
    [(matched, total, what)] = converged(result.stdout)
    assert matched == total and what == "appointments match the provider"
    assert result.stdout.strip().splitlines()[-1].startswith("converged: ")
    assert "zoom" not in result.stdout.lower()


def test_zoom_converges_with_valid_start_urls() -> None:
    result = demo("--provider", "zoom", "--zoom-meetings", "60", "--seed", "5")
    [(matched, total, what)] = converged(result.stdout)
    assert matched == total and total > 40 and what == "zoom meetings match the provider"
    assert result.stdout.strip().splitlines()[-1].startswith("converged: ")
    assert "zoom: before reconcile:" in result.stdout
    assert "reconciler: outcome success" in result.stdout
    found = re.search(r"start URLs served: (\d+), valid: (\d+)", result.stdout)
    assert found and found.group(1) == found.group(2), result.stdout[-3000:]
    assert "GET /v2/meetings/{meetingId}:" in result.stdout  # the API calls per route
    # several hosts: meetings of the second one, their webhooks never sent, found by the sweep
    assert "second host, no webhooks: 5/5 of its meetings found by the sweep" in result.stdout


def test_all_four_providers_share_one_stack_and_each_converges() -> None:
    result = demo("--provider", "all", "--appointments", "80", "--zoom-meetings", "50",
                  "--avon-appointments", "40", "--consularia-appointments", "40",
                  "--seed", "3")
    lines = converged(result.stdout)
    assert [what for _, _, what in lines] == [
        "appointments match the provider", "zoom meetings match the provider",
        "avon appointments match the provider", "consularia appointments match the provider"]
    assert all(matched == total > 0 for matched, total, _ in lines)
    assert result.stdout.strip().splitlines()[-1].startswith("converged: ")
    assert result.stdout.count("stack up: ") == 1
    for api in ("provider API ", "Zoom API ", "Avon API ", "Consularia API "):
        assert api in result.stdout
    # Avon's hints went through the worker; Consularia was polled twice, list then details.
    assert re.search(r"avon report\n.*\n  worker: [1-9]\d* hints queued a refetch",
                     result.stdout)
    assert re.search(r"poll 1: outcome success, \d+ API calls: [1-9]\d* list pages",
                     result.stdout)
    assert "poll 2: outcome success" in result.stdout


@pytest.mark.parametrize(("provider", "option", "what"), [  # two tests: two xdist workers
    ("avon", "--avon-appointments", "avon appointments match the provider"),
    ("consularia", "--consularia-appointments", "consularia appointments match the provider"),
])
def test_each_new_provider_alone_converges(provider: str, option: str, what: str) -> None:
    result = demo("--provider", provider, option, "40", "--seed", "4")
    [(matched, total, said)] = converged(result.stdout)
    assert matched == total > 20 and said == what
    assert "zoom" not in result.stdout.lower() and "savvycal" not in result.stdout.lower()
