"""``flowkit serve`` as a real process on a free loopback port, and an httpx client for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(log: Path, *args: str, token: str | None = None) -> Iterator[httpx.Client]:
    """Run ``flowkit serve ARGS --port FREE``; yield a client for it (with the token, if given)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FLOWKIT_TOKEN", None)
    command = [sys.executable, "-m", "flowkit", "serve", "--port", str(port), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"flowkit serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            client.get("/openapi.json")
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(up, 30, "flowkit serve to answer")
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
