"""Conductor daemons as processes (``python -m conductor``), logging to files, killed at the end."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from conductor import Conductor
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


class Conductors:
    """Starts ``python -m conductor`` processes, logging to files; kills what is left at the end."""

    def __init__(self, tmp_path: Path, persistence: str) -> None:
        self.tmp_path = tmp_path
        self.persistence = persistence
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, board_url: str, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.log_path(name), "wb")  # noqa: SIM115 - the child owns it
        command = [
            sys.executable,
            "-m",
            "conductor",
            "--board",
            board_url,
            "--persistence",
            self.persistence,
            "--name",
            name,
            "--grace",
            "5",
            *extra,
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.procs[name] = proc
        wait_until(
            lambda: "running jobs from" in self.log(name) or proc.poll() is not None, 20, f"{name} to start"
        )
        assert proc.poll() is None, self.log(name)
        return proc

    def log_path(self, name: str) -> Path:
        return self.tmp_path / f"conductor-{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> float:
        """SIGKILL ``name`` and reap it; return when (wall clock)."""
        proc = self.procs[name]
        proc.kill()
        killed_at = time.time()
        proc.wait(10)
        return killed_at

    def consumed(self, wait_for: Collection[str] = (), timeout: float = 10.0) -> collections.Counter[str]:
        """How many times each job (by uuid) was consumed, across every conductor's log.

        A conductor logs a consume after the board has it: a test that saw the job leave the board names
        it in ``wait_for``, and the count is read once every such job is logged (or ``timeout`` passed:
        then the caller's assert shows what is missing), not in the moment before the line is written.
        """
        deadline = time.monotonic() + timeout
        while True:
            found: collections.Counter[str] = collections.Counter()
            for name in self.procs:
                found.update(re.findall(r"consumed job '[^']*' \(([0-9a-f-]{36})\)", self.log(name)))
            if all(uuid in found for uuid in wait_for) or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def running(conductor: Conductor) -> Iterator[Conductor]:
    """``conductor`` running on a thread of this process for the block; stopped (and checked stopped)
    at its end, whatever happened inside."""
    thread = threading.Thread(target=conductor.run, daemon=True)
    thread.start()
    try:
        yield conductor
    finally:
        conductor.stop()
        thread.join(15)
        assert not thread.is_alive(), "the conductor did not stop"
