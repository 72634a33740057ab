"""A demo workspace (a SQLite database and a cloud in one directory) and run 1: fail and revert."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from flowkit import engines
from flowkit.demo.cloud import FakeCloud
from flowkit.demo.flow import create_cluster
from flowkit.engines.engine import Engine
from flowkit.listeners import PrintingListener, TimingListener
from flowkit.states import AtomState, FlowState


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
