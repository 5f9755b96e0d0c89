"""Running an ASGI app under uvicorn on 127.0.0.1, on a free port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_in_background(
    app: ASGIApp, *, host: str = "127.0.0.1", lifespan: bool | Literal["on", "off"] = False
) -> Iterator[str]:
    """Serve ``app`` while the block runs; yields its root URL (``http://127.0.0.1:PORT``).
    ``lifespan`` (True or "on"): run the app's start-up and shutdown (what it opened in the
    server's loop, such as its own Redis client, is then closed there).

    The simulator's API lives under ``/v1``, so a client's base URL is ``f"{url}/v1"``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on" if lifespan in (True, "on") else "off",
        ws="none",
        http="h11",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
