"""``python -m meetsync.providers.avon.simulator serve|play``: the simulated Avon from a shell."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from meetsync.providers.avon.simulator import AvonSim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meetsync.providers.avon.simulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="play a workload, then serve the Avon API")
    serve.add_argument("--port", type=int, default=8767)
    serve.add_argument("--per-minute", type=int, default=600, help="requests per minute")
    serve.add_argument("--token-ttl", type=int, default=3600, help="access token seconds")
    play = commands.add_parser("play", help="print the workload's envelopes, one per line")
    for command in (serve, play):
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--appointments", type=int, default=100)
        command.add_argument("--time-format", choices=("ms", "iso"), default="ms")
    args = parser.parse_args(argv)

    sim = AvonSim(args.seed, time_format=args.time_format)
    deliveries = sim.play(args.appointments)
    if args.command == "play":
        for delivery in deliveries:
            sys.stdout.buffer.write(delivery.body + b"\n")
        return 0
    credentials = sim.credentials
    print(
        f"{len(sim.appointments)} appointments, {len(deliveries)} changes\n"
        f"AVON_API_URL=http://127.0.0.1:{args.port}\n"
        f"AVON_CLIENT_ID={credentials.client_id}\n"
        f"AVON_CLIENT_SECRET={credentials.client_secret}\n"
        f"AVON_USER_JWT={credentials.user_jwt}\n"
        f"AVON_ACCOUNT={credentials.account}",
        file=sys.stderr,
    )
    app = sim.asgi_app(per_minute_limit=args.per_minute, token_ttl_seconds=args.token_ttl)
    uvicorn.run(app, host="127.0.0.1", port=args.port, ws="none", log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
