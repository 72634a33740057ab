"""Run 4: a flow that waits (a 3-second cool-down, then an operator's approval) parks under a conductor.

The conductor runs one job at a time (``--max-jobs 1``). While the flow waits, its job is back on the
board in state WAITING and the conductor holds no thread for it: it runs another job meanwhile. At the
end of the cool-down the conductor claims the job again, the flow goes on to its approval and parks
again; the demo then sends the approval event through the board, which wakes the job at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from flowkit.demo.workspace import Demo
from flowkit.flow import Flow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.task import Task
from flowkit.waits import Sleep, WaitForEvent

COOL_DOWN = 3.0
"""Seconds the demo flow sleeps (a durable Sleep: no thread is held meanwhile)."""


class OpenCluster(Task):
    """The step after the approval: says who approved."""

    def execute(self, cluster_name: str, approval: Any) -> str:
        return f"cluster {cluster_name} opened, approved by {approval.get('by', '?')}"


class Hello(Task):
    """The other job's only step: proves the conductor is free while the first job waits."""

    def execute(self) -> str:
        return "hello"


def approved_cluster(cool_down: float = COOL_DOWN) -> Flow:
    """Cool down for ``cool_down`` seconds, wait for ``approve-{cluster_name}``, then open the cluster."""
    return LinearFlow("approved-cluster").add(
        Sleep("cool-down", seconds=cool_down),
        WaitForEvent("approval", event="approve-{cluster_name}", timeout=600, provides="approval"),
        OpenCluster("open-cluster", provides="opened"),
    )


def hello() -> Flow:
    return LinearFlow("hello").add(Hello("hello"))


@dataclass
class WaitRun:
    """What happened to the waiting job (times are seconds; ``late``: after the cool-down's end)."""

    parked_on_sleep: bool = False
    owner_while_parked: str | None = "?"
    other_job_done_meanwhile: bool = False
    late: float | None = None
    parked_on_event: bool = False
    job_state: str = "?"
    flow_state: str = "?"
    opened: str | None = None
    notes: list[str] = field(default_factory=list)


def waiting(out: TextIO, demo: Demo, timeout: float = 60.0) -> WaitRun:
    """Post the waiting flow and another job to a SQLite board with one conductor; follow the waits."""
    from flowkit.jobboard import JobState
    from flowkit.jobboard import backends as boards

    board_url = f"sqlite:///{demo.workdir / 'board-waits.sqlite'}"
    board = boards.fetch("demo-waits", board_url, persistence=demo.backend)
    board.connect()
    command = [sys.executable, "-m", "conductor", "--board", board_url, "--persistence", demo.db_url]
    command += ["--board-name", "demo-waits", "--name", "conductor-c", "--max-jobs", "1"]
    command += ["--allow", "flowkit.demo", "--log-level", "ERROR"]
    conductor = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    run = WaitRun()
    deadline = time.monotonic() + timeout

    def until(check: Any) -> bool:
        while time.monotonic() < deadline and conductor.poll() is None:
            if check():
                return True
            time.sleep(0.01)
        return False

    try:
        job = board.post_flow(
            "flowkit.demo.waits:approved_cluster", store={"cluster_name": "demo"}, name="approved-cluster"
        )
        out.write(
            f"   posted job {job.name!r}: cool down {COOL_DOWN:g}s, then wait for event 'approve-demo'\n"
        )
        out.flush()
        run.parked_on_sleep = until(lambda: board.state_of(job) is JobState.WAITING)
        run.owner_while_parked = board.find_owner(job)
        wake = _deadline(demo, job.flow_uuid or "", "cool-down")
        out.write(
            f"   parked: job {board.state_of(job)} until the cool-down ends, owner "
            f"{run.owner_while_parked or 'none'}: conductor-c holds no thread for it\n"
        )
        other = board.post_flow("flowkit.demo.waits:hello", name="hello")
        run.other_job_done_meanwhile = until(lambda: board.state_of(other) is JobState.COMPLETE) and (
            board.state_of(job) is JobState.WAITING
        )
        out.write(
            f"   meanwhile conductor-c (--max-jobs 1) ran job 'hello': {board.state_of(other)}, "
            f"while {job.name!r} stayed {board.state_of(job)}\n"
        )
        out.flush()
        saved: dict[str, str] = {}

        def slept() -> bool:
            nonlocal saved
            saved = demo.saved_states(job.flow_uuid or "")
            return saved.get("cool-down") == "SUCCESS"

        if until(slept) and wake is not None:
            run.late = max(0.0, time.time() - wake)
        run.parked_on_event = until(lambda: board.state_of(job) is JobState.WAITING)
        late = "?" if run.late is None else f"{run.late:.2f}s"
        out.write(
            f"   the cool-down ended ({late} after its time): conductor-c claimed the job again; now it\n"
            f"   waits for its approval, parked again: job {board.state_of(job)}\n"
        )
        board.send_event("approve-demo", {"by": "the demo"})
        out.write('   sent event \'approve-demo\' {"by": "the demo"} through the board\n')
        out.flush()
        until(lambda: board.state_of(job) is JobState.COMPLETE)
        run.job_state = str(board.state_of(job))
    finally:
        conductor.send_signal(signal.SIGTERM)
        try:
            conductor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            conductor.kill()
            conductor.wait()
        board.close()
    with demo.backend.get_connection() as conn:
        fd = conn.get_flow_detail(job.flow_uuid or "")
    run.flow_state = str(fd.state)
    opened = fd.find_by_name("open-cluster")
    run.opened = opened.results if opened is not None else None
    out.write(f"   job {run.job_state}, flow {run.flow_state}: {run.opened}\n")
    return run


def _deadline(demo: Demo, flow_uuid: str, atom: str) -> float | None:
    """When the wait ``atom`` ends, as its flow saved it (epoch seconds)."""
    with demo.backend.get_connection() as conn:
        detail = conn.get_flow_detail(flow_uuid).find_by_name(atom)
    wait = detail.meta.get("wait") if detail is not None else None
    return float(wait["deadline"]) if isinstance(wait, dict) and wait.get("deadline") else None


def problems(run: WaitRun) -> list[str]:
    """What run 4 did not do as designed."""
    found = []
    if not run.parked_on_sleep or run.owner_while_parked is not None:
        found.append(f"run 4 should park the job during its Sleep (owner then: {run.owner_while_parked})")
    if not run.other_job_done_meanwhile:
        found.append("run 4: the conductor should run another job while the first one is parked")
    if run.late is None or run.late > 1.0:
        found.append(f"run 4: the job should wake within 1s of its time, woke {run.late} s late")
    if not run.parked_on_event:
        found.append("run 4 should park the job again while it waits for its approval")
    if run.job_state != "COMPLETE" or run.flow_state != "SUCCESS":
        found.append(f"run 4 should end COMPLETE/SUCCESS, got {run.job_state}/{run.flow_state}")
    return found
