"""Probes for the real services the integration tests use, and the rule for when one is missing.

Locally a missing service skips the tests that need it, with the reason; in CI (``CI=true``) it fails
them, so a broken CI machine can never pass by testing nothing. Nothing here touches the network at
import time: the fixtures in ``conftest.py`` call the probes when a test first asks for a service.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import pytest

HOST = "127.0.0.1"
POSTGRES_PORT = 5432
RABBITMQ_PORT = 5672
ZOOKEEPER_PORT = 2181
PROBE_TIMEOUT = 1.0
START_HINT = "start it with `scripts/services.sh start`"


@dataclass(frozen=True)
class Probe:
    """The outcome of probing a service: whether it answered, and if not, why."""

    ok: bool
    reason: str = ""


def in_ci() -> bool:
    """True when running in CI, where every service the tests need must be there."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_service(name: str, ok: bool, reason: str) -> None:
    """Skip the current test (locally) or fail it (CI=true) unless the service ``name`` is ``ok``."""
    if ok:
        return
    message = f"{name} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true, so a missing service is a failure; {START_HINT})", pytrace=False)
    pytest.skip(f"{message} ({START_HINT})")


def probe_tcp(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> Probe:
    """Whether a TCP connection to ``host:port`` can be opened within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Probe(ok=True)
    except OSError as exc:
        return Probe(ok=False, reason=f"cannot connect to {host}:{port}: {exc}")


def probe_zookeeper(host: str = HOST, port: int = ZOOKEEPER_PORT, timeout: float = PROBE_TIMEOUT) -> Probe:
    """Whether a ZooKeeper server at ``host:port`` answers the four-letter word ``ruok`` with ``imok``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"ruok")
            answer = b""
            while chunk := sock.recv(64):
                answer += chunk
    except OSError as exc:
        return Probe(ok=False, reason=f"no answer to `ruok` from {host}:{port}: {exc}")
    if answer != b"imok":
        return Probe(
            ok=False,
            reason=f"{host}:{port} answered `ruok` with {answer!r}, not b'imok' "
            "(is `ruok` missing from 4lw.commands.whitelist?)",
        )
    return Probe(ok=True)
