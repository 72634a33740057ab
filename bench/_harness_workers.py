"""Worker-engine workloads shared by ``flowkit_workers.py`` and ``peer_workers.py`` (stdlib only).

Why shared: both sides must start the same number of worker processes with the same threads on the same
RabbitMQ, build the same flows and read the clock at the same points. Each side script only says how
to start one worker and how to build and load flows; the rest lives here.

Cases (no-op tasks; 2 worker processes of 4 threads each by default; one untimed warm-up run first):

- ``unordered``: N tasks in an unordered flow: throughput (tasks/s) = N / (engine load + run).
- ``linear``: N tasks in a linear flow, so one request is in flight at a time: its round trip.

Round trip = from the atom's RUNNING event (just before the request is sent) to its SUCCESS event
(after the reply was received and recorded), from the engine's atom notifier, the same on both sides.
For ``unordered`` it is reported too, but it then includes the time a request waits for a free thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

DEFAULT_URL = os.environ.get("FLOWKIT_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
TOPIC = "bench"
WARMUP_N = 20
SETTLE_S = 2.0  # after starting the workers: both are connected and announced well before this


class Side(Protocol):
    """What a side script provides."""

    name: str

    def worker_command(self, url: str, exchange: str, topic: str, threads: int) -> list[str]: ...
    def noop(self, name: str) -> Any: ...
    def linear_flow(self, name: str) -> Any: ...
    def unordered_flow(self, name: str) -> Any: ...
    def load(self, flow: Any, url: str, exchange: str, topic: str) -> Any: ...
    def watch(self, engine: Any, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(state_name, atom_name)`` for every atom state change."""
        ...

    def cleanup(self, url: str, exchange: str) -> None: ...


@dataclass(frozen=True)
class Options:
    cases: list[str]
    sizes: list[int]
    rt_sizes: list[int]
    repeat: int
    workers: int
    threads: int
    url: str


def parse_options(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description="worker-based engine benchmark")
    p.add_argument("--cases", default="unordered,linear")
    p.add_argument("--sizes", default="1000", help="N for the unordered (throughput) case")
    p.add_argument("--rt-sizes", default="200", help="N for the linear (round trip) case")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver; not used here")
    a = p.parse_args(argv)
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    return Options(
        [c for c in a.cases.split(",") if c],
        ints(a.sizes),
        ints(a.rt_sizes),
        a.repeat,
        a.workers,
        a.threads,
        a.url,
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def _one_run(side: Side, opts: Options, exchange: str, case: str, n: int) -> tuple[float, list[float]]:
    make = side.unordered_flow if case == "unordered" else side.linear_flow
    flow = make(case).add(*(side.noop(f"t{i}") for i in range(n)))
    started: dict[str, float] = {}
    trips: list[float] = []

    def on_event(state: str, atom: str) -> None:
        now = time.perf_counter()
        if state == "RUNNING":
            started[atom] = now
        elif state == "SUCCESS" and atom in started:
            trips.append(now - started.pop(atom))

    t0 = time.perf_counter()
    engine = side.load(flow, opts.url, exchange, TOPIC)
    side.watch(engine, on_event)
    engine.run()
    total = time.perf_counter() - t0
    if len(trips) != n:
        raise AssertionError(f"{case}: {len(trips)} of {n} tasks reached SUCCESS")
    return total, trips


def _measure(side: Side, opts: Options, exchange: str, case: str, n: int) -> dict[str, Any]:
    totals: list[float] = []
    trips: list[float] = []
    for _ in range(opts.repeat):
        total, run_trips = _one_run(side, opts, exchange, case, n)
        totals.append(total)
        trips.extend(run_trips)
    trips.sort()
    total = statistics.median(totals)
    out = {
        "total_s": total,
        "per_task_us": total / n * 1e6,
        "tasks_per_s": n / total,
        "rt_p50_ms": _percentile(trips, 0.50) * 1e3,
        "rt_p99_ms": _percentile(trips, 0.99) * 1e3,
        "repeats": opts.repeat,
        "runs_s": [round(t, 4) for t in totals],
    }
    log(
        f"  {side.name} {case} n={n}: {total:.3f} s, {out['tasks_per_s']:,.0f} tasks/s, round trip "
        f"p50 {out['rt_p50_ms']:.2f} ms p99 {out['rt_p99_ms']:.2f} ms"
    )
    return out


def run(side: Side, opts: Options, script_dir: Path) -> dict[str, Any]:
    """Start the workers, run every case, stop the workers; ``{case: {str(n): entry}}``."""
    exchange = f"bench-{side.name}-{uuid.uuid4().hex[:8]}"
    procs = [
        subprocess.Popen(
            side.worker_command(opts.url, exchange, TOPIC, opts.threads),
            cwd=script_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(opts.workers)
    ]
    results: dict[str, Any] = {}
    try:
        time.sleep(SETTLE_S)
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a {side.name} worker exited with {proc.returncode} at start")
        _one_run(side, opts, exchange, "unordered", WARMUP_N)
        for case in opts.cases:
            sizes = opts.sizes if case == "unordered" else opts.rt_sizes
            results[case] = {str(n): _measure(side, opts, exchange, case, n) for n in sizes}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        side.cleanup(opts.url, exchange)
    return results
