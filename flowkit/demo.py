"""flowkit's demo: provision a 3-server cluster, fail, revert everything, then succeed.

Run it with ``python -m flowkit.demo`` (or ``bash scripts/demo.sh``). The flow,
``create-cluster``, creates three servers at the same time (an unordered flow on the
parallel engine's threads), waits for each to come up, then configures the cluster.
The first run's configure step fails ("quota exceeded"), so every server created is
reverted (deleted) in reverse dependency order; the second run, with the fault switched
off through the store, succeeds. Every state change is printed as it happens.

The cloud is simulated in memory (:class:`FakeCloud`). The flow is also a factory the CLI
can use::

    flowkit run flowkit.demo:create_cluster --engine parallel --store '{"fail_configure": true}'
    flowkit graph flowkit.demo:create_cluster --format mermaid
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from flowkit import engines
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
    """An in-memory cloud: servers by id, and a log of what was created and deleted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.servers: dict[str, str] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []

    def reset(self) -> None:
        with self._lock:
            self.servers.clear()
            self.created.clear()
            self.deleted.clear()

    def create(self, name: str) -> str:
        with self._lock:
            server_id = f"srv-{name}"
            self.servers[server_id] = "BUILDING"
            self.created.append(server_id)
            return server_id

    def activate(self, server_id: str) -> None:
        with self._lock:
            self.servers[server_id] = "ACTIVE"

    def delete(self, server_id: str) -> None:
        with self._lock:
            if self.servers.pop(server_id, None) is not None:
                self.deleted.append(server_id)


CLOUD = FakeCloud()
"""The demo's cloud; module-level, like a real one outside the process."""


class CreateServer(Task):
    """Create one server; revert deletes it."""

    def execute(self, cluster_name: str, index: int, pace: float = 1.0) -> str:
        time.sleep(pace * (0.10 + 0.05 * index))
        return CLOUD.create(f"{cluster_name}-{index}")

    def revert(self, result: Any, index: int, pace: float = 1.0, **kwargs: Any) -> None:
        if isinstance(result, str):  # a Failure when execute itself failed: nothing was created
            # Staggered like the creates, mirrored, so the deletions show in reverse creation order.
            time.sleep(pace * 0.05 * max(1, 5 - index))
            CLOUD.delete(result)


class WaitForServer(Task):
    """Poll until the server is up, reporting progress."""

    def execute(self, server_id: str, pace: float = 1.0) -> None:
        for step in range(1, 4):
            time.sleep(pace * 0.08)
            self.update_progress(step / 3)
        CLOUD.activate(server_id)


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
    deleted: list[str] = field(default_factory=list)


def make_engine(fail: bool, pace: float) -> Engine:
    """The engine for one demo run: parallel threads, the fault switch and pace in the store."""
    store = {"cluster_name": "demo", "fail_configure": fail, "pace": pace}
    return engines.load(create_cluster(), store=store, engine="parallel", executor="threads")


def run_demo(out: TextIO, fail: bool = True, pace: float = 1.0) -> DemoRun:
    """Run the flow once on a fresh cloud, printing each transition live and then a summary."""
    CLOUD.reset()
    engine = make_engine(fail, pace)
    error: BaseException | None = None
    started = time.monotonic()
    with PrintingListener(engine, stream=out, timestamps="relative"), TimingListener(engine) as timing:
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
        servers_left=sorted(CLOUD.servers),
        deleted=list(CLOUD.deleted),
    )
    print_summary(out, result)
    return result


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


def check(first: DemoRun, second: DemoRun, servers: int = SERVERS) -> list[str]:
    """What did not go as designed (an empty list when the demo behaved)."""
    problems = []
    if first.state is not FlowState.REVERTED:
        problems.append(f"run 1 should end REVERTED, ended {first.state.value}")
    not_reverted = [n for n, s in first.atom_states.items() if s is not AtomState.REVERTED]
    if not_reverted:
        problems.append(f"run 1 left atoms not reverted: {', '.join(not_reverted)}")
    if first.servers_left or len(first.deleted) != servers:
        problems.append(f"run 1 should delete all {servers} servers, left {first.servers_left}")
    if second.state is not FlowState.SUCCESS:
        problems.append(f"run 2 should end SUCCESS, ended {second.state.value}")
    if len(second.servers_left) != servers:
        problems.append(f"run 2 should leave {servers} servers, left {second.servers_left}")
    return problems


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Both runs, then a verdict; 0 when the demo behaved as designed."""
    parser = argparse.ArgumentParser(prog="python -m flowkit.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pace", type=float, default=1.0, help="scale the simulated work (0: no waiting)")
    args = parser.parse_args(argv)
    out = out if out is not None else sys.stdout
    out.write(
        "== run 1: create 3 servers in parallel, wait for them, configure the cluster.\n"
        "   configure-cluster fails (quota exceeded): every atom that ran is reverted.\n"
    )
    first = run_demo(out, fail=True, pace=args.pace)
    out.write("\n== run 2: the same flow with the fault switched off (store: fail_configure=false)\n")
    second = run_demo(out, fail=False, pace=args.pace)
    problems = check(first, second)
    if problems:
        out.write("\ndemo: did NOT behave as designed:\n" + "".join(f"  - {p}\n" for p in problems))
        return 1
    out.write("\ndemo: run 1 was reverted cleanly, run 2 succeeded.\n")
    return 0


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: the tasks and QuotaExceeded are then
    # named flowkit.demo.*, as they are for the CLI, other processes and (later) persistence.
    from flowkit.demo import main as _main

    sys.exit(_main())
