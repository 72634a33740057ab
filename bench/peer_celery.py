"""Celery 5.7.0 on the same RabbitMQ as flowkit's worker suite: a group and a chain of no-op tasks.

Runs inside ``.bench/celery-venv`` (see ``_peer.py``). Like flowkit's side it starts 2 worker processes
of 4 threads each (``--pool threads -c 4``) on a fresh queue, results over AMQP (``rpc://``), and maps
its cases onto the worker suite's:

- ``unordered``: ``group(noop.si() x N)``, all in flight at once: throughput = N / (send + all results).
- ``linear``: N sequential ``noop.delay().get()`` calls, one task in flight as in flowkit's linear flow:
  per task = total / N, and the round trip p50/p99.
- ``chain``: ``chain(noop.si() x N)``: Celery's own way to run tasks one after the other (each link is
  sent by the worker that ran the one before); per task = total / N. flowkit has no row of this name:
  its ``linear`` row is the one to compare with.

Prints ``{case: {str(n): entry}}`` on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _harness import emit, guarded
from celery import Celery, chain, group

BROKER = os.environ.get("FLOWKIT_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("FLOWKIT_BENCH_CELERY_QUEUE", "flowkit-bench")
WARMUP_N = 20
SETTLE_S = 3.0

app = Celery("peer_celery", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=4,
    task_acks_late=False,
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None


def _workers(count: int, threads: int) -> list[subprocess.Popen[bytes]]:
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=str(here), FLOWKIT_BENCH_CELERY_QUEUE=QUEUE)
    cmd = [
        sys.executable, "-m", "celery", "-A", "peer_celery", "worker", "--pool", "threads",
        "-c", str(threads), "-Q", QUEUE, "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-l", "WARNING",
    ]  # fmt: skip
    return [
        subprocess.Popen([*cmd, "-n", f"bench{i}-{uuid.uuid4().hex[:6]}@%h"], env=env, cwd=here)
        for i in range(count)
    ]


def _group(n: int) -> dict[str, float]:
    start = time.perf_counter()
    results = group(noop.si() for _ in range(n)).apply_async().get(timeout=600)
    total = time.perf_counter() - start
    if len(results) != n:
        raise AssertionError(f"group returned {len(results)} results, expected {n}")
    return {"total_s": total}


def _chain(n: int) -> dict[str, float]:
    start = time.perf_counter()
    chain(noop.si() for _ in range(n)).apply_async().get(timeout=600)
    return {"total_s": time.perf_counter() - start}


def _sequential(n: int) -> dict[str, Any]:
    trips = []
    for _ in range(n):
        start = time.perf_counter()
        noop.delay().get(timeout=60)
        trips.append(time.perf_counter() - start)
    trips.sort()
    return {
        "total_s": sum(trips),
        "rt_p50_ms": trips[len(trips) // 2] * 1e3,
        "rt_p99_ms": trips[min(n - 1, int(n * 0.99))] * 1e3,
    }


def _median(n: int, repeat: int, once: Any) -> dict[str, Any]:
    runs = [once(n) for _ in range(repeat)]
    out: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    total = out["total_s"]
    out |= {"per_task_us": total / n * 1e6, "tasks_per_s": n / total, "repeats": repeat}
    out["runs_s"] = [round(r["total_s"], 6) for r in runs]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="a group and a chain on Celery")
    p.add_argument("--cases", default="unordered,linear,chain")
    p.add_argument("--sizes", default="1000", help="N of the group (unordered)")
    p.add_argument("--rt-sizes", default="200", help="N of the chain and of the sequential round trips")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver")
    a = p.parse_args(argv)
    cases = [c for c in a.cases.split(",") if c]
    procs = _workers(a.workers, a.threads)
    results: dict[str, Any] = {}
    try:
        time.sleep(SETTLE_S)
        _group(WARMUP_N)  # untimed: connections, first calls, every worker awake
        repeat = max(1, a.repeat)
        runs = {
            "unordered": (a.sizes, _group),
            "linear": (a.rt_sizes, _sequential),
            "chain": (a.rt_sizes, _chain),
        }
        for case in cases:
            if case not in runs:
                raise SystemExit(f"unknown case {case!r}; known: {', '.join(runs)}")
            sizes, once = runs[case]
            results[case] = {
                str(n): guarded(f"celery {case} n={n}", lambda n=n, o=once: _median(n, repeat, o))
                for n in (int(x) for x in sizes.split(",") if x)
            }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
