"""``python -m meetsync.providers.savvycal.simulator serve|play``: the simulated SavvyCal from a
shell."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from meetsync.providers.savvycal.simulator import SavvyCalSim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meetsync.providers.savvycal.simulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="play a workload, then serve the provider API")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--rate-limit", type=int, default=300, help="requests per minute")
    play = commands.add_parser("play", help="print the workload's envelopes, one per line")
    for command in (serve, play):
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--appointments", type=int, default=100)
        command.add_argument("--token", default="sim-token")
    args = parser.parse_args(argv)

    sim = SavvyCalSim(args.seed, token=args.token)
    deliveries = sim.play(args.appointments)
    if args.command == "play":
        for delivery in deliveries:
            sys.stdout.buffer.write(delivery.body + b"\n")
        return 0
    print(
        f"{len(sim.appointments)} appointments, {len(deliveries)} changes; "
        f"API at http://127.0.0.1:{args.port}/v1 (token {args.token!r})",
        file=sys.stderr,
    )
    uvicorn.run(
        sim.asgi_app(rate_limit_per_minute=args.rate_limit),
        host="127.0.0.1",
        port=args.port,
        ws="none",
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
