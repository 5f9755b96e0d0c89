"""The provider simulator's API in a process of its own, so its CPU is not charged to ours.

    python -m bench.simserver --appointments 5000 --start 2025-03-01T15:00:00+00:00

Plays the workload, serves it with ``meetsync.simulator.serve_in_background`` (rate limit raised
out of the way), prints the root URL on one line, and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from bench.workload import SEED
from meetsync.providers.savvycal.simulator import SavvyCalSim
from meetsync.simulator import serve_in_background

RATE_LIMIT_PER_MINUTE = 10_000_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simserver")
    parser.add_argument("--appointments", type=int, required=True)
    parser.add_argument("--start", required=True, help="the simulator's start, ISO-8601")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    sim = SavvyCalSim(args.seed, start=datetime.fromisoformat(args.start))
    sim.play(args.appointments)
    with serve_in_background(sim.asgi_app(rate_limit_per_minute=RATE_LIMIT_PER_MINUTE)) as root:
        print(root, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
