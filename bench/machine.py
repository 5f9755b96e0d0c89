"""The machine a run measured: cores, load, Python, the package versions that matter."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
from importlib import metadata

PACKAGES = (
    "starlette", "uvicorn", "httptools", "uvloop", "redis", "hiredis", "orjson", "httpx", "arq",
    "sqlite-utils", "structlog", "svix", "psutil", "psycopg", "asyncpg",
)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _command_version(args: list[str]) -> str:
    if shutil.which(args[0]) is None:
        return "absent"
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) \
        else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict[str, str]:
    """Facts about this machine and software, as text, for the report's header."""
    from meetsync.dev.pg_server import PostgresStartError, binaries
    from meetsync.dev.redis_server import redis_binary

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    facts = {
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "redis-server": _command_version([redis_binary(), "--version"]),
        "wrk": _command_version(["wrk", "--version"]),
    }
    try:
        facts["postgresql"] = _command_version([str(binaries() / "postgres"), "--version"])
    except PostgresStartError:
        facts["postgresql"] = "absent"
    facts.update({name: _version(name) for name in PACKAGES})
    return facts
