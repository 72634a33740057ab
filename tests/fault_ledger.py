"""Counting what went wrong when conductors were killed: the one tally the soak script and test share.

Stdlib only, so ``bench/`` scripts import it as ``tests.fault_ledger`` without pytest. Atoms of the
fault flows (``tests.job_flows:logged``) append one line per start and end to a shared event log::

    start <job> <atom> <pid> <unix time>
    end   <job> <atom> <pid> <unix time>

(opened with O_APPEND, so lines from several processes never mix). The harness records each SIGKILL
(pid, time). From the two, :func:`tally` tells apart an atom run twice because the first conductor was
killed while running it (at-least-once: allowed) from one run twice for no such reason (a defect).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

AFTER_END_WINDOW = 1.0
"""Seconds after an atom's ``end`` within which a kill may still have beaten the save of its result."""


def append_event(log: str | Path, event: str, job: str, atom: str) -> None:
    """Called by an atom as it starts (``start``) and as it ends (``end``)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {job} {atom} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Event:
    kind: str  # "start" or "end"
    job: str
    atom: str
    pid: int
    at: float


def read_events(log: str | Path) -> list[Event]:
    """Every event in ``log``, in file order (a line cut short by a SIGKILL mid-write is skipped)."""
    path = Path(log)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] in ("start", "end"):
            out.append(Event(parts[0], parts[1], parts[2], int(parts[3]), float(parts[4])))
    return out


@dataclass
class Run:
    """One execution of one atom by one process; ``end`` is None if it never ended."""

    pid: int
    start: float
    end: float | None = None


def runs_of(events: Iterable[Event]) -> dict[tuple[str, str], list[Run]]:
    """(job, atom) -> its runs by start time; each ``end`` closes its pid's latest open run."""
    runs: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.at):
        mine = runs[(e.job, e.atom)]
        if e.kind == "start":
            mine.append(Run(e.pid, e.at))
            continue
        open_runs = [r for r in mine if r.pid == e.pid and r.end is None]
        if open_runs:
            open_runs[-1].end = e.at
    return dict(runs)


@dataclass
class Tally:
    """What a fault run did to its jobs; :meth:`failures` is what must be zero."""

    posted: int = 0
    consumed: int = 0
    kills: int = 0
    lost: list[str] = field(default_factory=list)
    """Jobs not consumed at the end: still on the board, or set aside."""
    set_aside: dict[str, str] = field(default_factory=dict)
    """Those of the lost jobs the board set aside, with its reason (claimed ``max_attempts`` times
    without being consumed, when kills kept hitting them)."""
    completed_twice: list[str] = field(default_factory=list)
    """Jobs consumed more than once (conductor logs)."""
    unfinished: list[str] = field(default_factory=list)
    """Jobs consumed although an atom of theirs never ended, or their flow is not SUCCESS."""
    doubled_atoms: int = 0
    """Atoms (job, atom) that started more than once."""
    extra_runs: int = 0
    explained_mid_atom: int = 0
    """Extra runs whose earlier run's process was killed while running it (started, not ended)."""
    explained_after_end: int = 0
    """Extra runs whose earlier run's process ended the atom but was killed before doing anything
    else for the job, within :data:`AFTER_END_WINDOW`: the result may not have been saved yet."""
    unexplained: list[str] = field(default_factory=list)
    """Extra runs with no kill to explain them, one description each."""
    concurrent: list[str] = field(default_factory=list)
    """Jobs with atoms of two processes running at the same time."""

    def failures(self) -> dict[str, int]:
        """The counts that must be 0, by name (all of them, zero or not)."""
        return {
            "lost": len(self.lost),
            "completed twice": len(self.completed_twice),
            "unfinished": len(self.unfinished),
            "unexplained doubles": len(self.unexplained),
            "concurrent": len(self.concurrent),
        }

    @property
    def ok(self) -> bool:
        return not any(self.failures().values())

    def lines(self) -> list[str]:
        """The report, one figure a line; details of each failure after the figures."""
        out = [
            f"jobs posted          {self.posted}",
            f"jobs consumed        {self.consumed}",
            f"jobs lost            {len(self.lost)} (set aside by the board: {len(self.set_aside)})",
            f"completed twice      {len(self.completed_twice)}",
            f"consumed unfinished  {len(self.unfinished)}",
            f"kills                {self.kills}",
            f"atoms run >1 time    {self.doubled_atoms} ({self.extra_runs} extra runs)",
            f"  explained: killed mid-atom          {self.explained_mid_atom}",
            f"  explained: killed after end, unsaved {self.explained_after_end}",
            f"  unexplained doubles                 {len(self.unexplained)}",
            f"jobs run by 2 at once {len(self.concurrent)}",
        ]
        lost = [
            f"{job}: set aside: {self.set_aside[job]}" if job in self.set_aside else job for job in self.lost
        ]
        for label, items in (
            ("lost", lost),
            ("completed twice", self.completed_twice),
            ("unfinished", self.unfinished),
            ("unexplained", self.unexplained),
            ("concurrent", self.concurrent),
        ):
            out += [f"  {label}: {item}" for item in items[:20]]
            if len(items) > 20:
                out.append(f"  {label}: ... {len(items) - 20} more")
        return out


def _explain(run: Run, nxt: Run, job_events: list[Event], kills: Mapping[int, float]) -> str | None:
    """Why ``run`` was followed by ``nxt`` of the same atom: ``"mid"``, ``"after_end"`` or None."""
    killed_at = kills.get(run.pid)
    if killed_at is None or killed_at < run.start or nxt.start < killed_at:
        return None  # its process was never killed, or was killed too early, or the rerun came first
    if run.end is None:
        return "mid"
    later = [e for e in job_events if e.pid == run.pid and run.end < e.at]
    if not later and killed_at - run.end <= AFTER_END_WINDOW:
        return "after_end"
    return None


def _overlaps(job_runs: Iterable[Run], kills: Mapping[int, float]) -> bool:
    """Did two processes run atoms of one job at the same time? (A run that never ended lasts until
    its process was killed, or for ever.)"""
    spans = sorted((r.start, r.end or kills.get(r.pid, math.inf), r.pid) for r in job_runs)
    for i, (start, _, pid) in enumerate(spans):
        if any(other != pid and start < end for _, end, other in spans[:i]):
            return True
    return False


def tally(
    atoms: Mapping[str, Iterable[str]],
    remaining: Iterable[str],
    consumed_lines: Counter[str],
    events: Iterable[Event],
    kills: Mapping[int, float],
    failed_flows: Iterable[str] = (),
    set_aside: Mapping[str, str] | None = None,
) -> Tally:
    """Count what happened to the jobs.

    ``atoms``: job -> the names of its atoms, for every job posted; ``remaining``: the jobs still on the
    board or set aside at the end; ``consumed_lines``: job -> "consumed" lines in the conductors' logs
    (a conductor killed just after consuming leaves none); ``kills``: pid -> when it was SIGKILLed;
    ``failed_flows``: consumed jobs whose flow in persistence is not SUCCESS; ``set_aside``: job -> reason,
    for the jobs set aside (lost too, whether or not they are in ``remaining``).
    """
    events = list(events)
    set_aside = dict(set_aside or {})
    left = set(remaining) | set(set_aside)
    t = Tally(posted=len(atoms), kills=len(kills), set_aside=set_aside)
    t.lost = sorted(j for j in atoms if j in left)
    t.consumed = t.posted - len(t.lost)
    t.completed_twice = sorted(j for j, n in consumed_lines.items() if n > 1)
    by_job: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_job[e.job].append(e)
    runs = runs_of(events)
    unfinished = set(failed_flows)
    for job, names in atoms.items():
        if job in left:
            continue
        if any(not any(r.end is not None for r in runs.get((job, a), [])) for a in names):
            unfinished.add(job)
    t.unfinished = sorted(unfinished)
    for (job, atom), mine in sorted(runs.items()):
        if len(mine) < 2:
            continue
        t.doubled_atoms += 1
        t.extra_runs += len(mine) - 1
        for run, nxt in itertools.pairwise(mine):
            why = _explain(run, nxt, by_job[job], kills)
            if why == "mid":
                t.explained_mid_atom += 1
            elif why == "after_end":
                t.explained_after_end += 1
            else:
                ended = "never ended" if run.end is None else f"ended {run.end:.3f}"
                killed = f"killed {kills[run.pid]:.3f}" if run.pid in kills else "not killed"
                t.unexplained.append(
                    f"{job}/{atom}: pid {run.pid} started {run.start:.3f}, {ended}, {killed}; "
                    f"pid {nxt.pid} started it again {nxt.start:.3f}"
                )
    runs_by_job: dict[str, list[Run]] = defaultdict(list)
    for (job, _), mine in runs.items():
        runs_by_job[job] += mine
    t.concurrent = sorted(job for job, mine in runs_by_job.items() if _overlaps(mine, kills))
    return t
