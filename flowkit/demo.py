"""flowkit's demo: provision a cluster, fail and revert, then crash mid-flow and resume.

Run it with ``python -m flowkit.demo`` (or ``bash scripts/demo.sh``). The flow,
``create-cluster``, creates three servers at the same time (an unordered flow on the
parallel engine's threads), waits for each to come up, then configures the cluster.
Every state change is saved to a SQLite file (the embedded default) as it happens and
printed live.

- Run 1: the configure step fails ("quota exceeded"), so every server created is
  reverted (deleted) in reverse dependency order.
- Run 2: the flow runs in a child process that is killed with SIGKILL half way. This
  process then rebuilds the flow from its saved factory and resumes it from the
  database: servers already created are not created again, the atoms that were
  running when the process died run again (at-least-once), and the create task uses
  its atom's stable uuid as an idempotency key, so a rerun never makes a second server.
- Run 3: the flow is posted as a job to a job board kept in SQLite; a conductor daemon
  claims it and is killed half way; a second conductor claims the job when the first
  one's lease runs out, resumes the flow from the database and consumes the job.

The cloud is simulated in a JSON file (:class:`FakeCloud`) so that both processes see the
same servers. The flow is also a factory the CLI can use::

    flowkit run flowkit.demo:create_cluster --engine parallel --store \
        '{"cluster_name": "c1", "cloud": "/tmp/cloud.json", "fail_configure": true}'
    flowkit graph flowkit.demo:create_cluster --format mermaid
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from flowkit import context, engines
from flowkit.engines.engine import Engine
from flowkit.flow import Flow
from flowkit.listeners import PrintingListener, TimingListener
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.patterns.unordered_flow import UnorderedFlow
from flowkit.states import AtomState, FlowState
from flowkit.task import Task

SERVERS = 3


class QuotaExceeded(Exception):
    """The simulated cloud refuses to allocate what the cluster needs."""


class FakeCloud:
    """A cloud in a JSON file: servers by id, what was created and deleted, idempotency keys.

    A file (locked for each call) rather than memory, so that a process that crashed and the
    one that resumes its flow see the same servers, as they would see a real cloud.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def reset(self) -> None:
        with self._state() as state:
            state.clear()

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.path.read_text()) if self.path.exists() else {}
                for key, empty in (("servers", {}), ("created", []), ("deleted", []), ("keys", {})):
                    state.setdefault(key, empty)
                yield state
                # write-and-rename: a process killed mid-write leaves the old file, never half of one
                scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
                scratch.write_text(json.dumps(state))
                os.replace(scratch, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, key: str) -> Any:
        with self._state() as state:
            return state[key]

    @property
    def servers(self) -> dict[str, str]:
        return dict(self._read("servers"))

    @property
    def created(self) -> list[str]:
        return list(self._read("created"))

    @property
    def deleted(self) -> list[str]:
        return list(self._read("deleted"))

    def create(self, name: str, idempotency_key: str | None = None) -> str:
        """Create a server, or return the one this key already created (a rerun after a crash)."""
        with self._state() as state:
            if idempotency_key is not None and idempotency_key in state["keys"]:
                return str(state["keys"][idempotency_key])
            server_id = f"srv-{name}"
            state["servers"][server_id] = "BUILDING"
            state["created"].append(server_id)
            if idempotency_key is not None:
                state["keys"][idempotency_key] = server_id
            return server_id

    def activate(self, server_id: str) -> None:
        with self._state() as state:
            state["servers"][server_id] = "ACTIVE"

    def delete(self, server_id: str) -> None:
        with self._state() as state:
            if state["servers"].pop(server_id, None) is not None:
                state["deleted"].append(server_id)


class CreateServer(Task):
    """Create one server; revert deletes it."""

    def execute(self, cluster_name: str, index: int, cloud: str, pace: float = 1.0) -> str:
        time.sleep(pace * (0.10 + 0.05 * index))
        # The atom's uuid is stable across a crash and a resume: the cloud creates one server per key.
        return FakeCloud(cloud).create(f"{cluster_name}-{index}", context.current_atom_uuid())

    def revert(self, result: Any, index: int, cloud: str, pace: float = 1.0, **kwargs: Any) -> None:
        if isinstance(result, str):  # a Failure when execute itself failed: nothing was created
            # Staggered like the creates, mirrored, so the deletions show in reverse creation order.
            time.sleep(pace * 0.05 * max(1, 5 - index))
            FakeCloud(cloud).delete(result)


class WaitForServer(Task):
    """Poll until the server is up, reporting progress."""

    def execute(self, server_id: str, cloud: str, pace: float = 1.0) -> None:
        for step in range(1, 4):
            time.sleep(pace * 0.08)
            self.update_progress(step / 3)
        FakeCloud(cloud).activate(server_id)


class ConfigureCluster(Task):
    """Join the servers into a cluster; fails with QuotaExceeded while ``fail_configure`` is set."""

    def execute(
        self, cluster_name: str, fail_configure: bool = False, pace: float = 1.0, **servers: str
    ) -> str:
        time.sleep(pace * 0.10)
        if fail_configure:
            raise QuotaExceeded(
                f"quota exceeded: no floating IP left for cluster {cluster_name!r} "
                f"({len(servers)} servers ready)"
            )
        return f"https://{cluster_name}.cluster.example:6443"


def create_cluster(servers: int = SERVERS) -> Flow:
    """The demo flow: ``servers`` x (create -> wait) at the same time, then configure."""
    names = [f"server_{n}" for n in range(1, servers + 1)]
    return LinearFlow("create-cluster").add(
        UnorderedFlow("servers").add(
            *(
                LinearFlow(f"server-{n}").add(
                    CreateServer(f"create-server-{n}", provides=f"server_{n}", inject={"index": n}),
                    WaitForServer(f"wait-server-{n}", rebind={"server_id": f"server_{n}"}),
                )
                for n in range(1, servers + 1)
            )
        ),
        ConfigureCluster("configure-cluster", requires=names, provides="endpoint"),
    )


@dataclass
class DemoRun:
    """What one run of the demo flow did."""

    state: FlowState
    atom_states: dict[str, AtomState]
    timings: dict[str, float]
    revert_timings: dict[str, float]
    seconds: float
    error: BaseException | None = None
    servers_left: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


class Demo:
    """One demo workspace: a SQLite database and a simulated cloud in ``workdir``."""

    def __init__(self, workdir: str | os.PathLike[str], pace: float = 1.0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_url = f"sqlite:///{self.workdir / 'flowkit.sqlite'}"
        self.cloud = FakeCloud(self.workdir / "cloud.json")
        self.pace = pace
        from flowkit.persistence import backends

        self.backend = backends.fetch(self.db_url)
        with self.backend.get_connection() as conn:
            conn.upgrade()

    def store(self, fail: bool) -> dict[str, Any]:
        return {
            "cluster_name": "demo",
            "fail_configure": fail,
            "pace": self.pace,
            "cloud": str(self.cloud.path),
        }

    def new_flow_detail(self, fail: bool) -> str:
        """A saved logbook and flow detail naming the factory, as a job board would post it."""
        from flowkit.persistence.models import FlowDetail, LogBook

        book = LogBook("demo")
        flow_detail = FlowDetail("create-cluster")
        flow_detail.meta["store"] = self.store(fail)
        engines.save_factory_details(flow_detail, create_cluster)
        book.add(flow_detail)
        with self.backend.get_connection() as conn:
            conn.save_logbook(book)
        return flow_detail.uuid

    def load(self, flow_detail_uuid: str) -> Engine:
        return engines.load_from_detail(
            flow_detail_uuid, backend=self.backend, engine="parallel", executor="threads"
        )

    def run(self, out: TextIO, engine: Engine) -> DemoRun:
        """Run (or resume) ``engine``, printing each transition live and then a summary."""
        error: BaseException | None = None
        started = time.monotonic()
        listeners = PrintingListener(engine, stream=out, timestamps="relative"), TimingListener(engine)
        with listeners[0], listeners[1] as timing:
            try:
                engine.run()
            except Exception as exc:  # the task's own exception, once the flow is reverted
                error = exc
        result = DemoRun(
            state=engine.storage.get_flow_state(),
            atom_states=engine.storage.get_atom_states(),
            timings=dict(timing.timings),
            revert_timings=dict(timing.revert_timings),
            seconds=time.monotonic() - started,
            error=error,
            servers_left=sorted(self.cloud.servers),
            created=self.cloud.created,
            deleted=self.cloud.deleted,
        )
        print_summary(out, result)
        return result

    def saved_states(self, flow_detail_uuid: str) -> dict[str, str]:
        """Atom states as the database has them (what ``flowkit show`` prints)."""
        with self.backend.get_connection() as conn:
            flow_detail = conn.get_flow_detail(flow_detail_uuid)
        return {atom.name: str(atom.state) for atom in flow_detail}


def run_demo(out: TextIO, fail: bool = True, pace: float = 1.0, workdir: str | None = None) -> DemoRun:
    """One run of the flow on a fresh cloud, saved to SQLite."""
    demo = Demo(workdir or tempfile.mkdtemp(prefix="flowkit-demo-"), pace)
    demo.cloud.reset()
    return demo.run(out, demo.load(demo.new_flow_detail(fail)))


def crash_and_resume(out: TextIO, demo: Demo, timeout: float = 30.0) -> tuple[dict[str, str], DemoRun]:
    """Run the flow in a child process, SIGKILL it half way, resume it here from the database."""
    demo.cloud.reset()
    uuid = demo.new_flow_detail(fail=False)
    child = subprocess.Popen(
        [sys.executable, "-m", "flowkit.demo", "--child", uuid, "--workdir", str(demo.workdir)],
        stdout=out if _has_fileno(out) else subprocess.DEVNULL,
    )
    saved: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:  # kill as soon as one server is up: others are still being created or waited on
        while time.monotonic() < deadline and child.poll() is None:
            saved = demo.saved_states(uuid)
            if any(n.startswith("wait-server") and s == "SUCCESS" for n, s in saved.items()):
                break
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    saved = demo.saved_states(uuid)
    out.write(f"\n   process {child.pid} killed with SIGKILL; the database says:\n")
    for name, state in saved.items():
        out.write(f"     {name:<20} {state}\n")
    out.write("\n== resuming in this process from the database (flowkit.demo:create_cluster rebuilt)\n")
    out.flush()
    return saved, demo.run(out, demo.load(uuid))


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


def _has_fileno(out: TextIO) -> bool:
    try:
        out.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _child(flow_detail_uuid: str, workdir: str) -> int:
    """The process that gets killed: runs the saved flow detail, printing as it goes."""
    demo = Demo(workdir)
    engine = demo.load(flow_detail_uuid)
    with PrintingListener(engine, stream=sys.stdout, timestamps="relative"):
        sys.stdout.flush()
        engine.run()
    return 0


def print_summary(out: TextIO, run: DemoRun) -> None:
    """Final state, then each atom's state and how long its execute and revert took."""
    why = f" ({type(run.error).__name__}: {run.error})" if run.error is not None else ""
    out.write(f"\nflow 'create-cluster' ended {run.state.value} in {run.seconds:.2f}s{why}\n")
    out.write(f"  {'atom':<20} {'state':<10} {'execute':>8} {'revert':>8}\n")
    for name, state in run.atom_states.items():
        ran = f"{run.timings[name]:.2f}s" if name in run.timings else "-"
        undone = f"{run.revert_timings[name]:.2f}s" if name in run.revert_timings else "-"
        out.write(f"  {name:<20} {state.value:<10} {ran:>8} {undone:>8}\n")
    if run.deleted:
        out.write(f"cloud: deleted {', '.join(run.deleted)} (in this order)\n")
    out.write(f"cloud: servers left: {', '.join(run.servers_left) or 'none'}\n")


def check(
    first: DemoRun,
    second: DemoRun,
    saved: dict[str, str],
    third: ConductorRun | None = None,
    servers: int = SERVERS,
) -> list[str]:
    """What did not go as designed (an empty list when the demo behaved)."""
    problems = []
    if first.state is not FlowState.REVERTED:
        problems.append(f"run 1 should end REVERTED, ended {first.state.value}")
    not_reverted = [n for n, s in first.atom_states.items() if s is not AtomState.REVERTED]
    if not_reverted:
        problems.append(f"run 1 left atoms not reverted: {', '.join(not_reverted)}")
    if first.servers_left or len(first.deleted) != servers:
        problems.append(f"run 1 should delete all {servers} servers, left {first.servers_left}")
    if saved.get("configure-cluster") == "SUCCESS":
        problems.append("run 2 was killed too late: the flow had already finished")
    if second.state is not FlowState.SUCCESS:
        problems.append(f"run 2 should end SUCCESS after the resume, ended {second.state.value}")
    if len(second.servers_left) != servers or len(second.created) != servers:
        problems.append(
            f"run 2 should create each of {servers} servers once, created {second.created}, "
            f"left {second.servers_left}"
        )
    rerun = [n for n, s in saved.items() if s == "SUCCESS" and n in second.timings]
    if rerun:
        problems.append(f"the resume executed atoms that had already succeeded: {', '.join(rerun)}")
    if third is not None:
        if third.job_state != "COMPLETE" or third.flow_state != "SUCCESS":
            problems.append(
                f"run 3 should consume the job after SUCCESS, got {third.job_state}/{third.flow_state}"
            )
        if third.second_owner in (None, third.first_owner):
            problems.append(f"run 3: another conductor should take the job over, got {third.second_owner}")
        if len(third.created) != servers or len(third.servers_left) != servers:
            problems.append(f"run 3 should create each server once, created {third.created}")
    return problems


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Both runs, then a verdict; 0 when the demo behaved as designed."""
    parser = argparse.ArgumentParser(prog="python -m flowkit.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pace", type=float, default=1.0, help="scale the simulated work (0.2 is quick)")
    parser.add_argument("--workdir", help="where the SQLite database and the cloud go (default: a temp dir)")
    parser.add_argument("--child", metavar="FLOW_DETAIL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.workdir)
    out = out if out is not None else sys.stdout
    demo = Demo(args.workdir or tempfile.mkdtemp(prefix="flowkit-demo-"), max(args.pace, 0.2))
    out.write(f"state is saved in {demo.db_url} (inspect it: flowkit show {demo.db_url})\n\n")
    out.write(
        "== run 1: create 3 servers in parallel, wait for them, configure the cluster.\n"
        "   configure-cluster fails (quota exceeded): every atom that ran is reverted.\n"
    )
    demo.cloud.reset()
    first = demo.run(out, demo.load(demo.new_flow_detail(fail=True)))
    out.write("\n== run 2: the same flow, in a child process that is killed (SIGKILL) half way\n")
    out.flush()
    saved, second = crash_and_resume(out, demo)
    out.write(
        "\n== run 3: the same as a job: conductor A (a daemon process) claims it from a SQLite job\n"
        "   board and is killed half way; conductor B claims it when A's lease runs out\n"
    )
    out.flush()
    third = conductors(out, demo)
    problems = check(first, second, saved, third)
    if problems:
        out.write("\ndemo: did NOT behave as designed:\n" + "".join(f"  - {p}\n" for p in problems))
        return 1
    out.write(
        "\ndemo: run 1 was reverted cleanly; run 2 survived a SIGKILL: the resume skipped what had\n"
        "succeeded, reran what was running, and each server was created exactly once; in run 3 a\n"
        "second conductor finished the job of a killed one.\n"
    )
    return 0


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: the tasks and QuotaExceeded are then
    # named flowkit.demo.*, as they are for the CLI, other processes and persistence.
    from flowkit.demo import main as _main

    sys.exit(_main())
