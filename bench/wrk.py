"""Running wrk (an HTTP load generator outside our process) and reading its summary."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("requests.lua")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class WrkMissing(RuntimeError):
    """wrk is not on PATH; the HTTP stages skip themselves."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    non_2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


def command(url: str, requests_file: Path, *, seconds: float, connections: int = 32,
            threads: int = 1) -> list[str]:
    return [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
        "-s", str(SCRIPT), url, "--", str(requests_file),
    ]


def run(args: list[str]) -> WrkResult:
    if not available():
        raise WrkMissing("wrk is not installed (apt-get install wrk)")
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip()[:300]}")
    return parse(done.stdout)


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse(output: str) -> WrkResult:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if total is None:
        raise ValueError("wrk printed no request count")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total[3]]
    latencies = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)$", output, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(total[1]),
        seconds=float(total[2]) * scale,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        p50_ms=_ms(latencies["50"]) if "50" in latencies else 0.0,
        p99_ms=_ms(latencies["99"]) if "99" in latencies else 0.0,
    )
