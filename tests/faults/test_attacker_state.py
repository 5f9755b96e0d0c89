"""What a sender chooses creates no state: a thousand unsigned deliveries, each with an event
type of its own, leave the counters hash as many fields as before, and a signed type name of
500 KB leaves a log line of bounded length. Against ``meetsync serve`` (real HTTP, real Redis,
its JSON log as it writes it), and ``meetsync stats`` on a hash an older release filled with
a field per type."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis

from meetsync.demo.stack import wait_ready
from meetsync.dev.redis_server import RedisServer, free_port
from meetsync.providers.savvycal.simulator.signing import native_headers
from meetsync.queue import IGNORED_TYPES, STATS
from tests.faults.conftest import NATIVE_SECRET, READ_TOKEN, Processes, stack_env
from tests.helpers.savvycal import savvycal_settings

FORGED = 1000  # as many fields as deliveries before; ~25 ms each on a busy CI host
# An older release's per-type fields, still in the hash of a deployment that upgraded.
LEGACY = {"ignored_type:poll.created": 2, "ignored_type:forged.1": 1, "applied": 7}
LINE_BOUND = 4 * 1024  # a line's fields are ours and few; each value is cut to 500 chars


async def test_unknown_types_count_in_one_field_and_long_ones_are_cut_in_the_log(
    redis_server: RedisServer, redis: aioredis.Redis, processes: Processes, tmp_path: Path
) -> None:
    await redis.hset(STATS, mapping=LEGACY)  # type: ignore[misc]
    settings = savvycal_settings(db_path=str(tmp_path / "mirror.db"), redis_url=redis_server.url,
                                 savvycal_webhook_secrets=(NATIVE_SECRET,), read_token=READ_TOKEN)
    port = free_port()
    env = stack_env(settings, PORT=str(port), AVON_API_URL="https://avon.invalid")
    web = processes.spawn("serve", env, "web")
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, web)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async def forge(n: int) -> int:
            body = orjson.dumps({"event": f"patient.forged_{n}", "object": {"id": f"p_{n}"}})
            return (await http.post("/webhooks/avon", content=body)).status_code

        assert await forge(0) == 202
        fields = await redis.hlen(STATS)  # type: ignore[misc]
        assert fields == len(LEGACY) + 1
        for start in range(1, FORGED, 100):
            codes = await asyncio.gather(*(forge(n) for n in range(start, min(start + 100,
                                                                               FORGED))))
            assert set(codes) == {202}
        assert await redis.hlen(STATS) == fields  # type: ignore[misc]
        assert int(await redis.hget(STATS, IGNORED_TYPES)) == FORGED  # type: ignore[misc]

        huge = "x" * 500_000
        body = orjson.dumps({"id": "evt_huge_type", "created_at": "2025-03-01T14:00:00Z",
                             "data": {"type": huge, "object": {}}})
        answer = await http.post("/webhooks/savvycal", content=body,
                                 headers=native_headers(body, NATIVE_SECRET, "wh_huge"))
        assert answer.status_code == 202 and answer.json() == {"status": "ignored"}
        assert await redis.hlen(STATS) == fields  # type: ignore[misc]

        page = await http.get("/status", headers={"authorization": f"Bearer {READ_TOKEN}"})
        shown = re.search(r'data-figure="ignored">(\d+)<', page.text)
        assert shown is not None and int(shown.group(1)) == FORGED + 1 + 3  # and legacy ones
    processes.stop_all()

    lines = processes.log("web").splitlines()
    ignored = [orjson.loads(line) for line in lines if '"webhook_ignored"' in line]
    assert len(ignored) == FORGED + 1  # each one logged, the huge one last
    cut = ignored[-1]["type"]
    assert cut.startswith("x" * 500) and cut.endswith(f"[{500_000 - 500} more chars]")
    assert max(len(line) for line in lines) < LINE_BOUND


def test_stats_folds_an_older_releases_per_type_fields(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
        client.hset(STATS, mapping={f"ignored_type:forged.{n}": 1 for n in range(3000)})
        client.hset(STATS, mapping={IGNORED_TYPES: 5, "applied": 9})
    finally:
        client.close()
    settings = savvycal_settings(db_path=str(tmp_path / "mirror.db"), redis_url=redis_server.url)
    shown = subprocess.run([sys.executable, "-m", "meetsync.cli", "stats"],
                           env=stack_env(settings), capture_output=True, timeout=60, check=True)
    assert orjson.loads(shown.stdout)["counters"] == {"applied": 9, IGNORED_TYPES: 3005}
    assert len(shown.stdout) < 200


def test_log_values_are_redacted_then_cut() -> None:
    """A credential that straddles the cut is redacted whole: cut first, the URL's password
    would lose the ``@`` that marks it and leak its first characters."""
    script = """if True:
        import structlog
        from meetsync.log import configure
        configure(json=True)
        dsn = "a" * 480 + "postgresql://u:" + "S3CRET" * 100 + "@db.internal/mirror"
        structlog.get_logger("t").warning("leak_probe", dsn=dsn, nested={"deep": [dsn]},
                                          plain="b" * 100_000)
    """
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    line = orjson.loads(run.stderr.strip().splitlines()[-1])
    assert "S3CRE" not in run.stderr
    # redacted: 480 + 15 + "[redacted]" + "@db.internal/mirror" = 524 chars, then cut
    assert line["dsn"] == "a" * 480 + "postgresql://u:[reda…[24 more chars]"
    assert line["nested"]["deep"][0] == line["dsn"]
    assert line["plain"] == "b" * 500 + "…[99500 more chars]"
    assert len(run.stderr) < LINE_BOUND
