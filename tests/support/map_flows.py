"""Flows with a :class:`flowkit.Map`, shared by tests/test_map.py and the crash child it starts.

Everything an item does goes to the journal (``tests.support.journal``), whose path is in the store, so
the tests read what ran, in which order and how often, whichever engine or process ran it.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from flowkit import Flow, LinearFlow, Map, Task, engines
from flowkit.persistence.models import FlowDetail
from tests.support.journal import Journal, record
from tests.support.tasks import Hold, Step


class CrashOnce(Task):
    """Records its execute; the first time (no ``marker`` file yet) creates the marker and SIGKILLs its
    own process: a crash in the middle of a Map."""

    def execute(self, journal: str, marker: str, value: Any = None) -> Any:
        record(journal, "execute", self.name, value=value)
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)
        return value


def step_each(k: int, item: Any) -> Step:
    return Step("step", inject={"value": item}, provides="out")


def crash_each(crash_at: int) -> Any:
    def each(k: int, item: Any) -> Task:
        if k == crash_at:
            return CrashOnce("crash", inject={"value": item}, provides="out")
        return Step("step", inject={"value": item}, provides="out")

    return each


def crash_flow(crash_at: int) -> Flow:
    """before -> Map over ``items`` (one at a time; item ``crash_at`` crashes once) -> after."""
    return LinearFlow("crashing").add(
        Step("before"),
        Map("m", over="items", each=crash_each(crash_at), result="out", provides="outs", max_parallel=1),
        Step("after", requires=["outs"]),
    )


def run_crashing(url: str, journal: str, marker: str, flow_uuid: str, crash_at: str) -> None:
    """The crash child: run :func:`crash_flow` on ``url`` under the flow detail ``flow_uuid``."""
    flow = crash_flow(int(crash_at))
    store = {"items": list(range(6)), "journal": journal, "marker": marker}
    engine = engines.load(flow, store=store, backend=url, flow_detail=FlowDetail(flow.name, flow_uuid))
    engine.run()


class CrashOnRevert(Step):
    """A Step whose first revert (no ``marker`` file yet) SIGKILLs its own process."""

    def revert(self, **kwargs: Any) -> None:
        marker = kwargs["marker"]
        record(kwargs["journal"], "revert-crash", self.name)
        if not os.path.exists(marker):
            with open(marker, "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)
        super().revert(**kwargs)


class Fails(Task):
    def execute(self, outs: list[Any]) -> None:
        raise RuntimeError("after the map")


def revert_crash_each(k: int, item: Any) -> Task:
    cls = CrashOnRevert if k == 1 else Step
    return cls("step", inject={"value": item}, provides="out", requires=["marker"] if k == 1 else None)


def revert_crash_flow() -> Flow:
    """before -> Map over ``items`` (one at a time) -> fails: item 1's revert crashes once."""
    return LinearFlow("revert-crashing").add(
        Step("before"),
        Map("m", over="items", each=revert_crash_each, result="out", provides="outs", max_parallel=1),
        Fails("fails"),
    )


def run_revert_crashing(url: str, journal: str, marker: str, flow_uuid: str) -> None:
    flow = revert_crash_flow()
    store = {"items": list(range(3)), "journal": journal, "marker": marker}
    engines.load(flow, store=store, backend=url, flow_detail=FlowDetail(flow.name, flow_uuid)).run()


# -- helpers of the Map tests ------------------------------------------------------------------------


def mapped(over: str = "items", each: Any = step_each, **kwargs: Any) -> Map:
    return Map("m", over=over, each=each, result="out", provides="outs", **kwargs)


def run(flow: Any, store: dict[str, Any], **options: Any) -> engines.Engine:
    engine = engines.load(flow, store=store, **options)
    engine.run()
    return engine


def most_at_once(journal: Journal) -> int:
    """The largest number of Hold tasks between their start and end at any point of the journal."""
    now = top = 0
    for kind, _name, _data in journal.events:
        if kind == "hold-start":
            now += 1
            top = max(top, now)
        elif kind == "hold-end":
            now -= 1
    return top


def hold_each(k: int, item: Any) -> Hold:
    return Hold("hold", inject={"value": item, "seconds": 0.15}, provides="out")


if __name__ == "__main__":
    if sys.argv[1] == "revert":
        run_revert_crashing(*sys.argv[2:])
    else:
        run_crashing(*sys.argv[1:])
