"""``python -m meetsync.providers.zoom.simulator serve|play``: the simulated Zoom from a shell."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from meetsync.providers.zoom.simulator import ZoomSim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meetsync.providers.zoom.simulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="play a workload, then serve the Zoom API")
    serve.add_argument("--port", type=int, default=8766)
    serve.add_argument("--per-second", type=int, default=30, help="requests per second")
    serve.add_argument("--daily", type=int, default=None, help="requests per day")
    serve.add_argument("--token-ttl", type=int, default=3600, help="access token seconds")
    serve.add_argument("--start-url-ttl", type=int, default=7200, help="start URL seconds")
    play = commands.add_parser("play", help="print the workload's envelopes, one per line")
    for command in (serve, play):
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--meetings", type=int, default=100)
    args = parser.parse_args(argv)

    sim = ZoomSim(args.seed)
    deliveries = sim.play(args.meetings)
    if args.command == "play":
        for delivery in deliveries:
            sys.stdout.buffer.write(delivery.body + b"\n")
        return 0
    account = sim.account
    root = f"http://127.0.0.1:{args.port}"
    print(
        f"{len(sim.meetings)} meetings, {len(deliveries)} changes\n"
        f"ZOOM_API_URL={root}/v2\nZOOM_OAUTH_URL={root}/oauth/token\n"
        f"ZOOM_ACCOUNT_ID={account.account_id}\nZOOM_CLIENT_ID={account.client_id}\n"
        f"ZOOM_CLIENT_SECRET={account.client_secret}\n"
        f"ZOOM_WEBHOOK_SECRET_TOKEN={account.secret_token}",
        file=sys.stderr,
    )
    app = sim.asgi_app(
        per_second_limit=args.per_second,
        daily_limit=args.daily,
        token_ttl_seconds=args.token_ttl,
        start_url_ttl_seconds=args.start_url_ttl,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, ws="none", log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
