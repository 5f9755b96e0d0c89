"""``python -m bench [--quick] [--only STAGE,...] [--out FILE]``: run the stages, write the report.

A full run rewrites BENCHMARKS.md at the repository root; ``--only`` replaces (or appends) only
its own section of BENCHMARKS.md, marked with its command, and leaves the rest alone;
``--quick`` (CI: proves every stage still runs, in well under a minute) prints the report
instead unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import machine, report
from bench.common import Options, StageResult
from bench.stages import (
    apply,
    e2e,
    freshness,
    ingest,
    memory,
    pg_apply,
    pg_driver,
    pg_workers,
    prune,
    queueing,
    read,
    sweep,
)
from meetsync.log import configure

STAGES: dict[str, Callable[[Options], StageResult]] = {
    "ingest": ingest.run,
    "apply": apply.run,
    "pg_driver": pg_driver.run,
    "pg_apply": pg_apply.run,
    "pg_workers": pg_workers.run,
    "e2e": e2e.run,
    "sweep": sweep.run,
    "memory": memory.run,
    "read": read.run,
    "queueing": queueing.run,
    "prune": prune.run,
    "freshness": freshness.run,
}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def run_stages(names: list[str], options: Options) -> list[StageResult]:
    results = []
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            result = STAGES[name](options)
        except Exception as exc:  # one broken stage must not hide the others' figures
            traceback.print_exc()
            result = StageResult(name, skipped=f"failed: {type(exc).__name__}: {exc}")
        result.seconds = time.monotonic() - started
        if result.skipped:
            print(f"bench: {name} skipped: {result.skipped}", file=sys.stderr, flush=True)
        for figure in result.figures:
            ratio = f" ratio {figure.ratio:.2f}" if figure.ratio is not None else ""
            print(f"bench: {figure.name}: ours {figure.ours:,.1f} {figure.unit}, baseline "
                  f"{figure.baseline}{ratio}, met: {figure.met}", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run?")
    parser.add_argument("--only", help=f"comma-separated stages, of: {', '.join(STAGES)}")
    parser.add_argument("--out", type=Path, help="report path (default: BENCHMARKS.md on a "
                        "full run, its own section of it with --only, stdout with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, mirrors)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(STAGES)
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)}")
    configure("INFO")
    workdir = Path(tempfile.mkdtemp(prefix="meetsync-bench-"))
    started = time.monotonic()
    facts = machine.describe()
    try:
        results = run_stages(names, Options(quick=args.quick, workdir=workdir))
    finally:
        if args.keep:
            print(f"bench: work dir kept at {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    command = "python -m bench" + (" --quick" if args.quick else "") + (
        f" --only {args.only}" if args.only else "")
    seconds = time.monotonic() - started
    text = report.render(results, facts, quick=args.quick, command=command, seconds=seconds,
                         workdir=workdir)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if args.only and args.out is None and not args.quick:
        part = report.section(results, facts, command=command, seconds=seconds,
                              workdir=workdir, day=time.strftime("%Y-%m-%d"))
        text = report.merge(DEFAULT_OUT.read_text(encoding="utf-8"), part, command)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"bench: wrote {out}", file=sys.stderr)
    return 0 if all(not r.skipped or not r.skipped.startswith("failed") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
