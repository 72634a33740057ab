"""Real ``flowkit-conductor`` processes for the fault tools: start, SIGKILL, SIGSTOP/SIGCONT, read logs.

Stdlib only (the bench scripts import it too). Every conductor is killed by :meth:`Fleet.close`, and
also by the kernel if the process that started it dies first (``PR_SET_PDEATHSIG``), so neither a
failed test nor a Ctrl-C'd script leaves conductors claiming jobs on a shared service.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READY = "running jobs from"
_CONSUMED = re.compile(r"consumed job '([^']*)' \(([0-9a-f-]{36})\)")
_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:  # looked up here, not in the forked child, where loading a library is not safe
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: close() still cleans up
    _prctl = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL me when the thread that started me ends (start conductors
    from the main thread)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Fleet:
    """Conductor processes on one board, each logging to ``<work>/conductor-<name>.log``."""

    def __init__(self, work: Path, board_url: str, persistence: str, *extra: str) -> None:
        self.work, self.board_url, self.persistence, self.extra = work, board_url, persistence, extra
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: dict[int, float] = {}
        """pid -> when it was SIGKILLed (wall clock), for ``tests.fault_ledger``."""

    def start(self, name: str, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start conductor ``name``; with ``wait``, return once it waits for jobs (or fail)."""
        command = [
            sys.executable,
            "-m",
            "conductor",
            "--board",
            self.board_url,
            "--persistence",
            self.persistence,
            "--name",
            name,
            "--grace",
            "1",
            "--allow",
            "tests.job_flows",
            *self.extra,
        ]
        # PGAPPNAME names its PostgreSQL sessions, so a trigger can tell whose write it recorded
        env = {**os.environ, "PYTHONPATH": str(REPO), "PGAPPNAME": f"conductor-{name}"}
        with open(self.log_path(name), "wb") as log:
            proc = subprocess.Popen(
                command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
            )
        self.procs[name] = proc
        if wait:
            self.wait_ready(name)
        return proc

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        proc, deadline = self.procs[name], time.monotonic() + timeout
        while READY not in self.log(name):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"conductor {name} did not start:\n{self.log(name)[-2000:]}")
            time.sleep(0.05)

    def alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    def kill(self, name: str) -> float:
        """SIGKILL ``name``, reap it, remember when (also in ``<work>/kills.log``); return that time."""
        proc = self.procs[name]
        proc.kill()
        killed_at = time.time()
        proc.wait(10)
        self.kills[proc.pid] = killed_at
        with open(self.work / "kills.log", "a") as f:
            f.write(f"{name} {proc.pid} {killed_at:.6f}\n")
        return killed_at

    def freeze(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGCONT)

    def log_path(self, name: str) -> Path:
        return self.work / f"conductor-{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def consumed_lines(self) -> collections.Counter[str]:
        """Job name -> "consumed job" lines across every conductor's log."""
        found: collections.Counter[str] = collections.Counter()
        for name in self.procs:
            found.update(m.group(1) for m in _CONSUMED.finditer(self.log(name)))
        return found

    def logged_at(self, name: str, text: str) -> float | None:
        """When conductor ``name`` first logged a line containing ``text`` (its ``asctime``, to the ms)."""
        for line in self.log(name).splitlines():
            if text in line:
                stamp = " ".join(line.split()[:2])
                try:
                    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
        return None

    def close(self) -> None:
        """SIGKILL every conductor still running (stopped ones too) and reap it."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
