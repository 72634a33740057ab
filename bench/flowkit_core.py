"""Core engine cases against flowkit, the same workloads as ``peer_core.py`` (both use ``_harness``).

Runs in the repo's own ``.venv``. Prints one JSON object on stdout: ``{case: {n: {"total_s": ...,
"per_task_us": ...}}}``. Beyond the peer's sizes it runs the ones the targets are about: 10,000-task
flows (is the per-task cost flat?), 5,000- and 100,000-atom compiles, and ``memory``: a 100,000-task
linear flow in a fresh subprocess, so that the peak RSS it reports belongs to that flow alone.
``async_unordered`` / ``async_linear`` (flowkit only): N ``async def`` no-op tasks on the parallel engine
(all at once on its event loop) and on the serial engine (one at a time), engine load + run.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from _harness import WARMUP_N, BenchFailure, emit, guarded, log, median_of, parse_options, run_cases

import flowkit
from flowkit import GraphFlow, LinearFlow, Task, UnorderedFlow, engines

MEMORY_CHILD_FLAG = "--memory-child"
ASYNC_CASES = {"async_unordered": "parallel", "async_linear": "serial"}
"""Async no-op cases and the engine each runs on."""


class Noop(Task):
    """A task that does nothing, so only engine overhead is measured."""

    def execute(self) -> None:
        return None

    def revert(self, *args: Any, **kwargs: Any) -> None:
        return None


class AsyncNoop(Task):
    """An async task that does nothing: what running a coroutine on the engine's loop costs."""

    async def execute(self) -> None:
        return None


class Fail(Task):
    """The last task of the revert case: it fails, so every task before it is reverted."""

    def execute(self) -> None:
        raise BenchFailure("planned failure")


class Chain(Task):
    """Graph-chain link: requires the previous link's value, returns its own index as ``v{i}``."""

    def __init__(self, i: int) -> None:
        super().__init__(name=f"t{i}", provides=f"v{i}", requires=[f"v{i - 1}"] if i else [])
        self.index = i

    def execute(self, **kwargs: Any) -> int:
        return self.index


class DagAtom(Task):
    """Random-DAG atom: takes whatever it requires by keyword and provides ``o{i}``."""

    def execute(self, **kwargs: Any) -> None:
        return None


class FlowkitSide:
    """The ``_harness.Side`` for flowkit."""

    def noop(self, name: str) -> Any:
        return Noop(name=name)

    def failing(self, name: str) -> Any:
        return Fail(name=name)

    def chain_task(self, i: int) -> Any:
        return Chain(i)

    def dag_atom(self, i: int, requires: Sequence[int]) -> Any:
        return DagAtom(name=f"a{i}", provides=f"o{i}", requires=[f"o{j}" for j in requires])

    def linear_flow(self, name: str) -> Any:
        return LinearFlow(name)

    def unordered_flow(self, name: str) -> Any:
        return UnorderedFlow(name)

    def graph_flow(self, name: str) -> Any:
        return GraphFlow(name)

    def load(self, flow: Any, parallel: bool) -> Any:
        if parallel:
            return engines.load(flow, engine="parallel", executor="threads", max_workers=8)
        return engines.load(flow, engine="serial")


def _maxrss_mib() -> float:
    """Peak RSS of this process's own memory: Linux's ``VmHWM`` (KiB).

    Not ``ru_maxrss``: Linux carries it across ``execve``, so the child started for this case reported
    its parent's peak (437 MiB after the 100,000-atom compile) when the parent had been bigger.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(n: int) -> dict[str, Any]:
    """Inside the fresh process: build and run an n-task linear flow, report peak RSS and time."""
    baseline = _maxrss_mib()
    start = time.perf_counter()
    flow = LinearFlow("memory").add(*(Noop(name=f"t{i}") for i in range(n)))
    engine = engines.load(flow, engine="serial")
    engine.run()
    total = time.perf_counter() - start
    return {
        "total_s": total,
        "per_task_us": total / n * 1e6,
        "peak_rss_mib": _maxrss_mib(),
        "baseline_rss_mib": baseline,
        "repeats": 1,
    }


def memory_case(n: int) -> dict[str, Any]:
    """Run ``memory_child`` in a new interpreter, so earlier cases cannot inflate the peak."""
    proc = subprocess.run(
        [sys.executable, __file__, MEMORY_CHILD_FLAG, str(n)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def async_once(case: str, n: int) -> dict[str, float]:
    """One repeat of an async case: engine load + run of N async no-ops (flow built outside the clock)."""
    engine_kind = ASYNC_CASES[case]
    flow_type = UnorderedFlow if engine_kind == "parallel" else LinearFlow
    flow = flow_type(case).add(*(AsyncNoop(name=f"t{i}") for i in range(n)))
    gc.collect()
    start = time.perf_counter()
    engine = engines.load(flow, engine=engine_kind, max_async=max(n, 1))
    engine.run()
    total = time.perf_counter() - start
    state = engine.storage.get_atom_state(f"t{n - 1}")
    if state.name != "SUCCESS":
        raise AssertionError(f"{case}: t{n - 1} ended {state}, expected SUCCESS")
    return {"total_s": total}


def async_cases(cases: Sequence[str], sizes: Sequence[int], repeat: int) -> dict[str, Any]:
    """The async cases among ``cases``, at every flow size (after one untimed warm-up each)."""
    out: dict[str, Any] = {}
    for case in cases:
        guarded(f"{case} warm-up", lambda c=case: median_of(WARMUP_N, 1, lambda: async_once(c, WARMUP_N)))
        out[case] = {
            str(n): guarded(
                f"{case} n={n}", lambda c=case, n=n: median_of(n, repeat, lambda: async_once(c, n))
            )
            for n in sizes
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [MEMORY_CHILD_FLAG]:
        emit(memory_child(int(args[1])))
        return 0
    opts = parse_options(
        args,
        cases=("linear", "unordered", "graph_chain", "revert", "compile", "memory", *ASYNC_CASES),
        sizes=(100, 1000, 10000),
        compile_sizes=(1000, 5000, 100000),
        full_compile_sizes=(1000, 5000, 100000),
        memory_sizes=(100000,),
    )
    log(
        f"flowkit {getattr(flowkit, '__version__', '?')}: cases={opts.cases} sizes={opts.sizes} "
        f"compile={opts.compile_sizes} memory={opts.memory_sizes} repeat={opts.repeat}"
    )
    wanted_async = [c for c in opts.cases if c in ASYNC_CASES]
    opts.cases[:] = [c for c in opts.cases if c not in ASYNC_CASES]
    results = run_cases(FlowkitSide(), opts, extra={"memory": memory_case})
    results.update(async_cases(wanted_async, opts.sizes, opts.repeat))
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
