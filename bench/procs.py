"""Child processes of a run: our servers as the Procfile starts them, the baselines', helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench.workload import NATIVE_SECRET, READ_TOKEN
from meetsync.dev.redis_server import free_port

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent  # children import ``bench`` from the checkout


def meetsync_env(db: Path | str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment ``meetsync serve``/``worker`` read (README: Configuration); ``db`` is a
    SQLite file or a ``postgresql://`` URL."""
    return {
        **os.environ,
        "MEETSYNC_DB": str(db),
        "REDIS_URL": redis_url,
        "SAVVYCAL_WEBHOOK_SECRET": NATIVE_SECRET,
        "MEETSYNC_READ_TOKEN": READ_TOKEN,
        "RECONCILE_INTERVAL_SECONDS": "86400",
        **extra,
    }


def serve_command(port: int) -> list[str]:
    return [PYTHON, "-m", "meetsync.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]


def baseline_command(app: str, port: int) -> list[str]:
    return [PYTHON, "-m", "bench.servers", app, "--port", str(port)]


def shown(args: Sequence[str]) -> str:
    """A command line as the report shows it (``python`` for this interpreter)."""
    return " ".join("python" if arg == PYTHON else arg for arg in args)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], patience: float = 20.0) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{shown(proc.args)} exited with {proc.returncode}")  # type: ignore[arg-type]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {patience:.0f}s")


def stop(proc: subprocess.Popen[bytes], patience: float = 10.0, *, close_stdin: bool = False
         ) -> None:
    """Closing stdin asks a ``bench`` helper to finish; SIGINT asks a server; then a kill."""
    if close_stdin and proc.stdin is not None:
        proc.stdin.close()
        try:
            proc.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@contextmanager
def running(args: Sequence[str], log: Path, env: dict[str, str] | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the block's duration; its output goes to ``log``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(list(args), env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        stop(proc)


@contextmanager
def server(app: str, log: Path, env: dict[str, str] | None = None
           ) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``app`` ("meetsync", or a baseline of ``bench.servers``) on a free port, listening."""
    port = free_port()
    args = serve_command(port) if app == "meetsync" else baseline_command(app, port)
    with running(args, log, env) as proc:
        wait_for_port(port, proc)
        yield port, proc
