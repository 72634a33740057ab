"""Core engine cases against TaskFlow 6.5.0, the peer flowkit must beat.

Runs inside ``.bench/taskflow-venv`` (see ``_peer.py``), so it imports only TaskFlow, the standard library
and the stdlib-only ``_harness`` beside it, which holds the workloads shared with ``flowkit_core.py``.
Prints one JSON object on stdout: ``{case: {n: {"total_s": ..., "per_task_us": ...}}}``.

Why the limits: TaskFlow costs ~20 ms per task at 1,000 tasks and grows with N, so 10,000-task flows
would take minutes per repeat (reported as skipped); its 5,000-atom compile takes about a minute, so it
runs only with ``--full`` and only once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from _harness import BenchFailure, emit, log, parse_options, run_cases
from taskflow import engines, task
from taskflow.patterns import graph_flow, linear_flow, unordered_flow


class Noop(task.Task):
    """A task that does nothing, so only engine overhead is measured."""

    def execute(self) -> None:
        return None

    def revert(self, *args: Any, **kwargs: Any) -> None:
        return None


class Fail(task.Task):
    """The last task of the revert case: it fails, so every task before it is reverted."""

    def execute(self) -> None:
        raise BenchFailure("planned failure")


class Chain(task.Task):
    """Graph-chain link: requires the previous link's value, returns its own index as ``v{i}``."""

    def __init__(self, i: int) -> None:
        super().__init__(name=f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"] if i else [])
        self.index = i

    def execute(self, **kwargs: Any) -> int:
        return self.index


class DagAtom(task.Task):
    """Random-DAG atom: takes whatever it requires by keyword and provides ``o{i}``."""

    def execute(self, **kwargs: Any) -> None:
        return None


class TaskFlowSide:
    """The ``_harness.Side`` for TaskFlow."""

    def noop(self, name: str) -> Any:
        return Noop(name=name)

    def failing(self, name: str) -> Any:
        return Fail(name=name)

    def chain_task(self, i: int) -> Any:
        return Chain(i)

    def dag_atom(self, i: int, requires: Sequence[int]) -> Any:
        return DagAtom(name=f"a{i}", provides=f"o{i}", requires=[f"o{j}" for j in requires])

    def linear_flow(self, name: str) -> Any:
        return linear_flow.Flow(name)

    def unordered_flow(self, name: str) -> Any:
        return unordered_flow.Flow(name)

    def graph_flow(self, name: str) -> Any:
        return graph_flow.Flow(name)

    def load(self, flow: Any, parallel: bool) -> Any:
        if parallel:
            return engines.load(flow, engine="parallel", executor="threads", max_workers=8)
        return engines.load(flow, engine="serial")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(
        argv,
        cases=("linear", "unordered", "graph_chain", "revert", "compile"),
        sizes=(100, 1000),
        compile_sizes=(1000,),
        full_compile_sizes=(1000, 5000),
        max_n=1000,
    )
    log(
        f"taskflow peer: cases={opts.cases} sizes={opts.sizes} compile={opts.compile_sizes} "
        f"repeat={opts.repeat}"
    )
    results = run_cases(TaskFlowSide(), opts, compile_repeat=lambda n: 1 if n > 1000 else opts.repeat)
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
