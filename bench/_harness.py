"""Timing harness shared by ``flowkit_core.py`` and ``peer_core.py``.

Why one harness for both sides: the comparison is only fair if both engines run the *same* workloads
(same flow shapes, the same seeded random DAG, the same clock boundaries, the same median rule). Each side
script only says how to build a task and load an engine; everything that is measured lives here.

Why stdlib only: ``peer_core.py`` imports this module from inside the TaskFlow venv, where neither flowkit
nor its dependencies are installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

FLOW_CASES = ("linear", "unordered", "graph_chain", "revert")
DAG_SEED = 20240611
WARMUP_N = 20  # one untimed small run per case first: imports and first-call costs are not per-task costs


class BenchFailure(Exception):
    """Raised by the last task of the ``revert`` case; both engines must re-raise it as itself."""


class Side(Protocol):
    """What a side script provides: how to make tasks and flows and how to load an engine."""

    def noop(self, name: str) -> Any: ...
    def failing(self, name: str) -> Any: ...
    def chain_task(self, i: int) -> Any: ...
    def dag_atom(self, i: int, requires: Sequence[int]) -> Any: ...
    def linear_flow(self, name: str) -> Any: ...
    def unordered_flow(self, name: str) -> Any: ...
    def graph_flow(self, name: str) -> Any: ...
    def load(self, flow: Any, parallel: bool) -> Any: ...


@dataclass(frozen=True)
class Options:
    """Parsed command line; the defaults differ per side, so each side passes its own."""

    cases: list[str]
    sizes: list[int]
    compile_sizes: list[int]
    memory_sizes: list[int]
    repeat: int
    full: bool
    max_n: int | None
    no_gc: bool = False


def dag_spec(n: int, seed: int = DAG_SEED) -> list[list[int]]:
    """Requirements of each atom of the random DAG: atom i needs 0-3 outputs of earlier atoms.

    Generated here, once, so that both engines compile exactly the same graph.
    """
    rng = random.Random(seed)
    return [sorted(rng.sample(range(i), rng.randint(0, min(3, i)))) for i in range(n)]


def build_flow(side: Side, case: str, n: int) -> Any:
    """Build the flow of one timed case; built outside the clock because users build flows once."""
    if case == "linear":
        return side.linear_flow("linear").add(*(side.noop(f"t{i}") for i in range(n)))
    if case == "unordered":
        return side.unordered_flow("unordered").add(*(side.noop(f"t{i}") for i in range(n)))
    if case == "graph_chain":
        return side.graph_flow("graph_chain").add(*(side.chain_task(i) for i in range(n)))
    if case == "revert":
        tasks = [side.noop(f"t{i}") for i in range(n - 1)] + [side.failing(f"t{n - 1}")]
        return side.linear_flow("revert").add(*tasks)
    raise ValueError(f"unknown case {case!r}")


def _state_name(state: Any) -> str:
    """TaskFlow states are plain strings; flowkit's may be an enum: compare by name either way."""
    return str(getattr(state, "value", state)).rsplit(".", 1)[-1].upper()


def _check(case: str, engine: Any, n: int) -> None:
    """Cheap sanity check after the clock stops, so a run that silently did nothing cannot look fast."""
    if case == "graph_chain":
        got = engine.storage.fetch(f"v{n - 1}")
        if got != n - 1:
            raise AssertionError(f"graph_chain: v{n - 1} is {got!r}, expected {n - 1}")
    elif case == "revert":
        state = _state_name(engine.storage.get_atom_state("t0"))
        if state != "REVERTED":
            raise AssertionError(f"revert: t0 ended {state}, expected REVERTED")
    else:
        state = _state_name(engine.storage.get_atom_state(f"t{n - 1}"))
        if state != "SUCCESS":
            raise AssertionError(f"{case}: t{n - 1} ended {state}, expected SUCCESS")


@contextmanager
def _gc_paused(paused: bool) -> Iterator[None]:
    """``--no-gc``: separates the engine's own per-task growth from the collector's, which rises with
    the number of live objects (and so with N) on any engine."""
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def time_flow_case(side: Side, case: str, n: int, no_gc: bool = False) -> dict[str, float]:
    """One repeat: engine load + run (run compiles, prepares and validates, as a user's run does)."""
    flow = build_flow(side, case, n)
    gc.collect()
    with _gc_paused(no_gc):
        engine, total = _run_flow(side, case, flow)
    _check(case, engine, n)
    return {"total_s": total}


def _run_flow(side: Side, case: str, flow: Any) -> tuple[Any, float]:
    """The timed region of a flow case; returns the engine for the sanity check."""
    start = time.perf_counter()
    engine = side.load(flow, parallel=(case == "unordered"))
    if case == "revert":
        try:
            engine.run()
        except BenchFailure:
            pass
        else:
            raise AssertionError("revert: engine.run() returned instead of raising BenchFailure")
    else:
        engine.run()
    return engine, time.perf_counter() - start


def time_compile_case(side: Side, n: int, no_gc: bool = False) -> dict[str, float]:
    """One repeat of compile / prepare / validate on the random DAG, each phase timed on its own."""
    spec = dag_spec(n)
    gc.collect()
    with _gc_paused(no_gc):
        t0 = time.perf_counter()
        flow = side.graph_flow("dag").add(*(side.dag_atom(i, reqs) for i, reqs in enumerate(spec)))
        t1 = time.perf_counter()
        engine = side.load(flow, parallel=False)
        engine.compile()
        t2 = time.perf_counter()
        engine.prepare()
        t3 = time.perf_counter()
        engine.validate()
        t4 = time.perf_counter()
    return {
        "build_s": t1 - t0,
        "compile_s": t2 - t1,
        "prepare_s": t3 - t2,
        "validate_s": t4 - t3,
        "total_s": t4 - t1,
    }


SAMPLED_S = 0.25
"""A flow case repeats past ``--repeat`` until its runs add up to this many seconds (at most
``MAX_REPEAT`` runs): a 1,000-task in-memory run takes ~5 ms, which one preemption of the process by
the host lengthens by tens of percent, and the median of 3 such runs moved 3.6 to 7.3 us per task
between runs of the suite minutes apart. Any side whose run is longer (TaskFlow's takes seconds)
keeps ``--repeat``: the rule is by time, the same for both."""
MAX_REPEAT = 25


def median_of(
    n: int, repeat: int, once: Callable[[], dict[str, float]], sampled_s: float = 0.0
) -> dict[str, Any]:
    """Median of every field over the repeats, plus the per-task figure the tables compare; more
    repeats (up to MAX_REPEAT) while the runs add up to less than ``sampled_s`` seconds."""
    runs = [once() for _ in range(repeat)]
    while len(runs) < MAX_REPEAT and sum(r["total_s"] for r in runs) < sampled_s:
        runs.append(once())
    repeat = len(runs)
    out: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["per_task_us"] = out["total_s"] / n * 1e6
    out["repeats"] = repeat
    out["runs_s"] = [round(r["total_s"], 6) for r in runs]
    return out


def guarded(label: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one (case, n); a failure becomes an entry instead of losing every other figure."""
    log(f"  {label} ...")
    try:
        result = fn()
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return {"total_s": None, "per_task_us": None, "error": f"{type(exc).__name__}: {exc}"[:500]}
    log(f"  {label}: {result['total_s']:.4f} s, {result['per_task_us']:.1f} us/task")
    return result


def skipped(reason: str) -> dict[str, Any]:
    """An entry for a size this side does not run; the driver prints it as '-'."""
    return {"total_s": None, "per_task_us": None, "skipped": reason}


def measure(side: Side, case: str, n: int, repeat: int, no_gc: bool = False) -> dict[str, Any]:
    """Median of ``repeat`` runs of one flow case (more when they are short: SAMPLED_S) or of the
    compile case at size n."""
    if case == "compile":
        return median_of(n, repeat, lambda: time_compile_case(side, n, no_gc))
    return median_of(n, repeat, lambda: time_flow_case(side, case, n, no_gc), SAMPLED_S)


def run_cases(
    side: Side,
    opts: Options,
    compile_repeat: Callable[[int], int] | None = None,
    extra: dict[str, Callable[[int], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run the selected cases and return ``{case: {str(n): entry}}``.

    ``compile_repeat`` lets a side cap repeats for a huge DAG (the peer's 5,000-atom compile takes about a
    minute); ``extra`` adds side-only cases keyed by name (flowkit's ``memory``), run per memory size.
    Each flow/compile case first runs once untimed at ``WARMUP_N``, so first-call costs stay out.
    """
    results: dict[str, Any] = {}
    for case in opts.cases:
        row: dict[str, Any] = {}
        if case in (*FLOW_CASES, "compile"):
            guarded(f"{case} warm-up", lambda c=case: measure(side, c, WARMUP_N, 1))
            for n in opts.compile_sizes if case == "compile" else opts.sizes:
                if case != "compile" and opts.max_n is not None and n > opts.max_n:
                    row[str(n)] = skipped(f"n > {opts.max_n} on this side")
                    continue
                reps = compile_repeat(n) if compile_repeat and case == "compile" else opts.repeat
                row[str(n)] = guarded(
                    f"{case} n={n}", lambda c=case, n=n, r=reps: measure(side, c, n, r, opts.no_gc)
                )
        elif extra and case in extra:
            for n in opts.memory_sizes:
                row[str(n)] = guarded(f"{case} n={n}", lambda c=case, n=n: extra[c](n))
        else:
            raise SystemExit(f"unknown case {case!r}")
        results[case] = row
    return results


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def parse_options(
    argv: Sequence[str] | None,
    *,
    cases: Sequence[str],
    sizes: Sequence[int],
    compile_sizes: Sequence[int],
    full_compile_sizes: Sequence[int],
    memory_sizes: Sequence[int] = (),
    max_n: int | None = None,
) -> Options:
    """Common CLI; a side passes its defaults, the driver passes explicit values."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--cases", default=",".join(cases), help="comma separated; default: %(default)s")
    p.add_argument("--sizes", default=",".join(map(str, sizes)), help="N for the flow cases")
    p.add_argument("--compile-sizes", default=None, help="N for the random-DAG compile case")
    p.add_argument("--memory-sizes", default=",".join(map(str, memory_sizes)))
    p.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    p.add_argument("--full", action="store_true", help="also the slow sizes")
    p.add_argument("--max-n", type=int, default=max_n, help="report sizes above this as skipped")
    p.add_argument("--no-gc", action="store_true", help="pause the cyclic GC inside the timed region")
    a = p.parse_args(argv)
    compile_text = a.compile_sizes or ",".join(map(str, full_compile_sizes if a.full else compile_sizes))
    return Options(
        cases=[c.strip() for c in a.cases.split(",") if c.strip()],
        sizes=_ints(a.sizes),
        compile_sizes=_ints(compile_text),
        memory_sizes=_ints(a.memory_sizes),
        repeat=max(1, a.repeat),
        full=a.full,
        max_n=a.max_n,
        no_gc=a.no_gc,
    )


def log(message: str) -> None:
    """Progress goes to stderr: stdout carries exactly one JSON object for the driver."""
    print(message, file=sys.stderr, flush=True)


def emit(results: dict[str, Any]) -> None:
    """Write the single JSON object the driver parses."""
    sys.stdout.write(json.dumps(results) + "\n")
    sys.stdout.flush()
