"""``flowkit serve``'s app on a real HTTP server (uvicorn) on a free loopback port, on a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from flowkit.serve.app import create_app
from flowkit.serve.settings import ServeSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(settings: ServeSettings) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of the app for ``settings`` while the block runs."""
    port = free_port()
    app = create_app(settings)
    # an open event stream (the console's live view) never ends by itself: the server says it stops
    stopping = threading.Event()
    app.state.flowkit.stopping = stopping
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="flowkit-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopping.set()
        server.should_exit = True
        thread.join(10)
