"""Ingest: signed ``POST /webhooks/savvycal`` verified and queued, against a verify-only route.

Both servers run as ``meetsync serve`` runs (one uvicorn process, httptools + uvloop) and stay
up together; wrk alternates between them (baseline, ours, baseline, ours) so both see the same
machine. Ours answers 202 only once Redis (AOF, everysec) holds the event.
"""

from __future__ import annotations

import redis

from bench import procs, workload, wrk
from bench.common import Figure, Options, StageResult
from meetsync.dev.redis_server import RedisServer
from meetsync.queue import EVENT_STREAM

TARGET = 0.70


def run(options: Options) -> StageResult:
    result = StageResult("ingest")
    if not wrk.available():
        result.skipped = "wrk is not installed (apt-get install wrk): no load generator to use"
        return result
    work = options.workdir / "ingest"
    work.mkdir(parents=True, exist_ok=True)
    bodies = work / "posts.txt"
    played = workload.deliveries(options.count(3000, 300))
    workload.write_requests(bodies, workload.signed_posts(played))
    seconds = options.pick(8, 1)
    rounds = options.count(2, 1)
    totals = {"bare-ingest": [0, 0.0], "meetsync": [0, 0.0]}
    latencies: dict[str, tuple[float, float]] = {}
    with RedisServer(work / "redis") as server:
        env = procs.meetsync_env(work / "mirror.db", server.url)
        with procs.server("bare-ingest", work / "bare.log", env) as (bare_port, _), \
                procs.server("meetsync", work / "serve.log", env) as (our_port, _):
            ports = {"bare-ingest": bare_port, "meetsync": our_port}
            commands = {
                name: wrk.command(f"http://127.0.0.1:{port}/webhooks/savvycal", bodies,
                                  seconds=seconds)
                for name, port in ports.items()
            }
            for port in ports.values():  # warm-up: imports, connections, caches
                wrk.run(wrk.command(f"http://127.0.0.1:{port}/webhooks/savvycal", bodies,
                                    seconds=1))
            client = redis.Redis.from_url(server.url)
            client.delete(EVENT_STREAM)
            for _ in range(rounds):
                for name, args in commands.items():
                    measured = wrk.run(args)
                    if measured.non_2xx or measured.errors:
                        result.notes.append(
                            f"{name}: {measured.non_2xx} non-2xx answers, "
                            f"{measured.errors} socket errors")
                    totals[name][0] += measured.requests
                    totals[name][1] += measured.seconds
                    latencies[name] = (measured.p50_ms, measured.p99_ms)
            queued = int(client.xlen(EVENT_STREAM))  # type: ignore[arg-type]
            client.close()
    bare = totals["bare-ingest"][0] / totals["bare-ingest"][1]
    ours = totals["meetsync"][0] / totals["meetsync"][1]
    figure = Figure("ingest", "req/s", ours, bare, p50_ms=latencies["meetsync"][0],
                    p99_ms=latencies["meetsync"][1])
    figure.note = (f"baseline p50/p99 {latencies['bare-ingest'][0]:.1f}/"
                   f"{latencies['bare-ingest'][1]:.1f} ms; {queued} events on the stream "
                   f"for {totals['meetsync'][0]} answered requests")
    result.figures.append(figure.require_ratio_at_least(TARGET))
    result.commands += [
        "ours: " + procs.shown(procs.serve_command(our_port)) + "  (env: MEETSYNC_DB, REDIS_URL,"
        " SAVVYCAL_WEBHOOK_SECRET, MEETSYNC_READ_TOKEN; LOG_LEVEL unset = INFO)",
        "baseline: " + procs.shown(procs.baseline_command("bare-ingest", bare_port)),
        f"load ({rounds} round(s) each, alternating): " + " ".join(commands["meetsync"]),
    ]
    return result
