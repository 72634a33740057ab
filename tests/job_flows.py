"""Flows that the conductor tests and the job board bench post by factory path (``tests.job_flows:steps``).

Conductors run in other processes, so every trace is a file: each step appends ``start``/``done`` lines
to ``<trace_dir>/<job_key>.log`` (to count executions), and holds ``<job_key>.lock`` (created with
O_EXCL, holding its pid) while it runs. Finding that lock held by a live process means two conductors
are running one job at the same time: that is written to ``<trace_dir>/violations``. The fault tools
(``tests.fault_ledger``) use :func:`logged` instead: one shared event log for every job. Importing this
module has no side effects.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from flowkit import GraphFlow, LinearFlow, Task
from tests.fault_ledger import append_event


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a killed process not yet reaped is a zombie: not running anything


def _append(path: Path, line: str) -> None:
    with open(path, "a") as f:  # O_APPEND: whole lines, even from several processes
        f.write(line + "\n")


def _take(lock: Path, trace: Path, job_key: str) -> None:
    me = os.getpid()
    for _ in range(5000):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(lock.read_text() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder == 0:  # being written this instant, or its writer was killed in between
                with contextlib.suppress(OSError):
                    if time.time() - lock.stat().st_mtime > 0.5:
                        lock.unlink()
                time.sleep(0.001)
                continue
            if _alive(holder):
                _append(trace / "violations", f"{job_key}: held by pid {holder} while pid {me} wants it")
            lock.unlink(missing_ok=True)
            continue
        os.write(fd, str(me).encode())
        os.close(fd)
        return
    raise RuntimeError(f"could not take {lock}")


class Step(Task):
    """Leaves a trace of each execution (see the module docstring), then sleeps ``delay`` seconds."""

    def execute(self, job_key: str, trace_dir: str, delay: float = 0.0) -> str:
        trace = Path(trace_dir)
        lock = trace / f"{job_key}.lock"
        _take(lock, trace, job_key)
        try:
            _append(trace / f"{job_key}.log", f"start {self.name} {os.getpid()} {time.time():.6f}")
            if delay:
                time.sleep(delay)
            _append(trace / f"{job_key}.log", f"done {self.name} {os.getpid()} {time.time():.6f}")
        finally:
            lock.unlink(missing_ok=True)
        return self.name


class Owned(Step):
    """A :class:`Step` whose result names the process that ran it: whose result did persistence keep?"""

    def execute(self, job_key: str, trace_dir: str, delay: float = 0.0) -> str:
        super().execute(job_key, trace_dir, delay)
        return f"{self.name}@{os.getpid()}"


class Boom(Task):
    def execute(self) -> None:
        raise ValueError("boom: this step always fails")


class Noop(Task):
    def execute(self) -> None:
        return None


def steps(n: int = 3) -> LinearFlow:
    """``n`` traced steps in a row (store: ``job_key``, ``trace_dir``, optional ``delay``)."""
    return LinearFlow("steps").add(*(Step(name=f"step-{i}") for i in range(n)))


def owned_steps(n: int = 3) -> LinearFlow:
    """Like :func:`steps`, each step's result being ``step-i@pid``."""
    return LinearFlow("owned-steps").add(*(Owned(name=f"step-{i}") for i in range(n)))


def failing() -> LinearFlow:
    """One traced step, then a step that fails: the flow reverts."""
    return LinearFlow("failing").add(Step(name="step-0"), Boom(name="boom"))


def tiny() -> LinearFlow:
    """One task that does nothing: job board throughput."""
    return LinearFlow("tiny").add(Noop(name="noop"))


class Needs(Task):
    def execute(self, never_provided: str) -> None:
        return None


def missing_requirement() -> LinearFlow:
    """Builds, but does not validate: ``never_provided`` is neither in the store nor provided."""
    return LinearFlow("missing-requirement").add(Noop(name="noop"), Needs(name="needs"))


def cyclic() -> GraphFlow:
    """Builds, but does not compile: its two tasks depend on each other."""
    a, b = Noop(name="a"), Noop(name="b")
    return GraphFlow("cyclic").add(a, b).link(a, b).link(b, a)


class Logged(Task):
    """Appends its ``start`` and ``end`` to the shared event log (``tests.fault_ledger``), sleeping
    ``delay`` seconds in between; returns its pid, so the saved result shows which process wrote it."""

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name=name)
        self.delay = delay

    def execute(self, job_key: str, event_log: str) -> int:
        append_event(event_log, "start", job_key, self.name)
        time.sleep(self.delay)
        append_event(event_log, "end", job_key, self.name)
        return os.getpid()


def logged(delays: list[float]) -> LinearFlow:
    """One :class:`Logged` atom per delay, named ``atom-0``... (store: ``job_key``, ``event_log``)."""
    return LinearFlow("logged").add(*(Logged(f"atom-{i}", d) for i, d in enumerate(delays)))


def trace_of(trace_dir: str | Path, job_key: str) -> list[tuple[str, str, int]]:
    """The (event, step, pid) lines a job's steps left, in order."""
    path = Path(trace_dir) / f"{job_key}.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, step, pid, _ = line.split()
        out.append((event, step, int(pid)))
    return out


def violations(trace_dir: str | Path) -> list[str]:
    path = Path(trace_dir) / "violations"
    return path.read_text().splitlines() if path.exists() else []
