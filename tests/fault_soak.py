"""The soak: jobs of short logged atoms, conductors SIGKILLed one after another, then a tally.

Shared by ``bench/faults_soak.py`` (200 jobs, kills until the board is empty) and the suite's small soak
in ``tests/test_conductor_faults.py`` (30 jobs, 5 kills); the counting is ``tests.fault_ledger``'s.
The caller brings a connected board (the conductors reach the same board through ``board_url``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from flowkit.jobboard import Job, JobBoard
from tests.fault_fleet import READY, Fleet
from tests.fault_ledger import Tally, read_events, tally

FACTORY = "tests.job_flows:logged"


@dataclass(frozen=True)
class SoakPlan:
    jobs: int = 200
    conductors: int = 3
    atoms: tuple[int, int] = (3, 5)
    """Atoms per job, drawn uniformly between these (inclusive)."""
    atom_seconds: tuple[float, float] = (0.02, 0.1)
    kill_every: tuple[float, float] = (1.5, 3.0)
    """Seconds between two SIGKILLs, drawn uniformly."""
    min_age: float = 1.0
    """A conductor is killed only once it has waited for jobs this long (a kill turn with none such
    is skipped)."""
    max_kills: int | None = None
    """Stop killing after this many (None: until the board is empty or ``kill_for`` is up)."""
    kill_for: float = 240.0
    drain: float = 60.0
    """Seconds to wait, once the killing stopped, for the rest of the jobs."""
    seed: int | None = None


def post_jobs(board: JobBoard, event_log: Path, plan: SoakPlan, rng: random.Random) -> dict[Job, list[str]]:
    """``plan.jobs`` jobs ``j0000``... of ``tests.job_flows:logged`` with random atoms -> atom names."""
    jobs = {}
    for i in range(plan.jobs):
        delays = [round(rng.uniform(*plan.atom_seconds), 3) for _ in range(rng.randint(*plan.atoms))]
        key = f"j{i:04d}"
        store = {"job_key": key, "event_log": str(event_log)}
        job = board.post_flow(FACTORY, store=store, factory_kwargs={"delays": delays}, name=key)
        jobs[job] = [f"atom-{i}" for i in range(len(delays))]
    return jobs


def on_board(board: JobBoard) -> set[str]:
    """Names of the jobs still on the board (not consumed, not set aside)."""
    return {j.name for j in board.iterjobs(ensure_fresh=True)}


def set_aside(board: JobBoard) -> dict[str, str]:
    """Name -> reason of the jobs the board set aside."""
    return {j.name: j.last_reason or "" for j in board.set_aside_jobs()}


def remaining(board: JobBoard) -> set[str]:
    """Names of the jobs not consumed: on the board, or set aside."""
    return on_board(board) | set(set_aside(board))


def failed_flows(persistence: str, jobs: Iterable[Job], skip: set[str]) -> list[str]:
    """Names of the jobs (not in ``skip``) whose flow in persistence is not SUCCESS."""
    from flowkit.engines.persistence import backend_for

    out = []
    backend = backend_for(persistence)
    try:
        with backend.get_connection() as conn:
            for job in jobs:
                if job.name not in skip and str(conn.get_flow_detail(job.flow_uuid or "").state) != "SUCCESS":
                    out.append(job.name)
    finally:
        backend.close()
    return out


def soak(
    board: JobBoard,
    board_url: str,
    persistence: str,
    work: Path,
    plan: SoakPlan,
    *conductor_args: str,
    progress: Callable[[str], None] | None = None,
) -> Tally:
    """Post the jobs, run ``plan.conductors`` conductors, SIGKILL a random one every ``kill_every``
    seconds and start a replacement, until the board is empty (or the time is up); then count. A job
    set aside (claimed ``max_attempts`` times by conductors that died) leaves the board, and is lost."""
    rng = random.Random(plan.seed)
    event_log = work / "events.log"
    jobs = post_jobs(board, event_log, plan, rng)
    fleet = Fleet(work, board_url, persistence, *conductor_args)
    try:
        names = [f"c{i}" for i in range(plan.conductors)]
        for name in names:
            fleet.start(name, wait=False)
        for name in names:
            fleet.wait_ready(name, timeout=60)
        started = time.monotonic()
        ready_since = dict.fromkeys(names, started)
        next_kill = started + rng.uniform(*plan.kill_every)
        last_report = started
        left = on_board(board)
        while left and time.monotonic() < started + plan.kill_for + plan.drain:
            now = time.monotonic()
            for name in fleet.alive():
                if name not in ready_since and READY in fleet.log(name):
                    ready_since[name] = now
            killing = now < started + plan.kill_for and (
                plan.max_kills is None or len(fleet.kills) < plan.max_kills
            )
            if killing and now >= next_kill:
                # Only a conductor that has had time to claim and run something: on a loaded machine a
                # replacement may take longer to start than the kill interval, and killing each one as
                # it becomes ready would leave jobs claimed by conductors that never ran them.
                grown = [n for n in fleet.alive() if now - ready_since.get(n, now) >= plan.min_age]
                if grown:
                    fleet.kill(rng.choice(grown))
                    fleet.start(f"c{len(fleet.procs)}", wait=False)
                next_kill = now + rng.uniform(*plan.kill_every)
            if progress is not None and now - last_report >= 5:
                last_report = now
                progress(
                    f"{now - started:5.0f}s: {plan.jobs - len(left)}/{plan.jobs} off the board, "
                    f"{len(fleet.kills)} kills, {len(fleet.alive())} conductors"
                )
            time.sleep(0.2)
            left = on_board(board)
        time.sleep(0.5)  # a conductor that just consumed a job has nothing more to write
    finally:
        fleet.close()
    left, aside = on_board(board), set_aside(board)
    return tally(
        atoms={job.name: atoms for job, atoms in jobs.items()},
        remaining=left,
        consumed_lines=fleet.consumed_lines(),
        events=read_events(event_log),
        kills=fleet.kills,
        failed_flows=failed_flows(persistence, jobs, left | set(aside)),
        set_aside=aside,
    )
