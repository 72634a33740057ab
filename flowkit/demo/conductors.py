"""Run 3: the flow as a job on a SQLite job board; a conductor is killed and another takes over."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from flowkit.demo.workspace import Demo


@dataclass
class ConductorRun:
    """What happened to one job run by conductors, one of which was killed."""

    killed_after: dict[str, str]
    first_owner: str | None
    second_owner: str | None
    failover_seconds: float
    job_state: str
    flow_state: str
    created: list[str]
    servers_left: list[str]


def conductors(out: TextIO, demo: Demo, lease: float = 2.0, timeout: float = 60.0) -> ConductorRun:
    """Post a job to a SQLite job board; conductor A claims it and is killed mid-flow; B takes over.

    No ZooKeeper: the board is a table next to the flows, and a claim is a lease its conductor
    renews. When A dies the lease runs out and B claims the job, resumes the flow from the
    database and consumes the job.
    """
    from flowkit.jobboard import backends as boards

    demo.cloud.reset()
    board_url = f"sqlite:///{demo.workdir / 'board.sqlite'}?lease={lease:g}"
    board = boards.fetch("demo", board_url, persistence=demo.backend)
    board.connect()
    try:
        job = board.post_flow(
            "flowkit.demo:create_cluster", store=demo.store(False), name="create-cluster-demo"
        )
        out.write(f"   posted job {job.name!r} ({job.uuid}) to {board_url}\n")

        def start(name: str) -> subprocess.Popen[bytes]:
            command = [sys.executable, "-m", "conductor", "--board", board_url, "--persistence", demo.db_url]
            command += [
                "--board-name",
                "demo",
                "--name",
                name,
                "--engine",
                "parallel",
                "--allow",
                "flowkit.demo",
            ]
            return subprocess.Popen([*command, "--log-level", "ERROR"], stdout=subprocess.DEVNULL)

        a = start("conductor-a")
        deadline = time.monotonic() + timeout
        saved: dict[str, str] = {}
        first_owner = None
        try:  # as in run 2, kill A once one server is up
            while time.monotonic() < deadline and a.poll() is None:
                first_owner = first_owner or board.find_owner(job)
                saved = demo.saved_states(job.flow_uuid) if job.flow_uuid else {}
                if any(n.startswith("wait-server") and st == "SUCCESS" for n, st in saved.items()):
                    break
                time.sleep(0.01)
        finally:
            a.send_signal(signal.SIGKILL)
            a.wait()
        killed_at = time.monotonic()
        first_owner = first_owner or board.find_owner(job)  # A's lease outlives A for a while
        saved = demo.saved_states(job.flow_uuid) if job.flow_uuid else {}
        done = sum(1 for st in saved.values() if st == "SUCCESS")
        out.write(f"   {first_owner} claimed it; killed it with SIGKILL after {done} atoms succeeded\n")
        out.flush()
        b = start("conductor-b")
        second_owner = None
        try:
            while time.monotonic() < deadline:
                state = board.state_of(job)
                owner = board.find_owner(job)
                if owner is not None and owner != first_owner:
                    second_owner = owner
                if str(state) not in ("UNCLAIMED", "CLAIMED"):
                    break
                time.sleep(0.01)
        finally:
            b.send_signal(signal.SIGTERM)
            b.wait(timeout=30)
        failover = time.monotonic() - killed_at
        job_state = str(board.state_of(job))
    finally:
        board.close()
    with demo.backend.get_connection() as conn:
        flow_state = str(conn.get_flow_detail(job.flow_uuid).state) if job.flow_uuid else "?"
    run = ConductorRun(
        killed_after=saved,
        first_owner=first_owner,
        second_owner=second_owner,
        failover_seconds=failover,
        job_state=job_state,
        flow_state=flow_state,
        created=demo.cloud.created,
        servers_left=sorted(demo.cloud.servers),
    )
    out.write(
        f"   {run.second_owner} claimed it when the lease ran out and resumed the flow: job {run.job_state}, "
        f"flow {run.flow_state}, {failover:.1f}s after the kill\n"
        f"   cloud: created {', '.join(run.created)}; servers left: {', '.join(run.servers_left) or 'none'}\n"
    )
    return run
