"""Not a suite: counts, per task, what the worker-based engine does on the wire for 1,000 unordered no-op
tasks, with 2 workers x 4 threads run on threads of this process (so every call is seen).

Counted on each side (engine = the main thread, worker = the workers' threads): ``Link.publish``,
``Link.ack``, thread-pool submits (a call handed to a task thread), ``Link.wake`` (a hand-off to the
connection's thread that writes its pipe; a wake that finds one pending is free), ``Link.flush`` (one
write of a corked batch, when one was held), JSON ``encode`` / ``decode``. ``--linear``: a linear
flow, one request in flight at a time. Counts do not depend on the machine's
load, timings do. For system calls, run it under ``strace -f -c -e trace=sendto,recvfrom,pselect6,poll``.

    .venv/bin/python bench/count_workers.py [--n 1000]
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flowkit_workers

from flowkit.workers import (
    Worker,
    protocol,
)
from flowkit.workers import link as link_module

COUNTS: collections.Counter[tuple[str, str]] = collections.Counter()
LOCK = threading.Lock()


def _counted(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        side = "engine" if threading.current_thread() is threading.main_thread() else "worker"
        with LOCK:
            COUNTS[(side, label)] += 1
        return fn(*args, **kwargs)

    return counted


def _instrument() -> None:
    protocol.encode = _counted("json encode", protocol.encode)  # type: ignore[assignment]
    protocol.decode = _counted("json decode", protocol.decode)  # type: ignore[assignment]
    link_cls: Any = link_module.Link
    for name in ("publish", "ack"):
        setattr(link_cls, name, _counted(name, getattr(link_cls, name)))
    wake = link_cls.wake

    def counted_wake(self: Any) -> None:
        if not self._woken:  # this one writes the pipe (the others find a wake pending)
            side = "engine" if threading.current_thread() is threading.main_thread() else "worker"
            with LOCK:
                COUNTS[(side, "wake")] += 1
        wake(self)

    link_cls.wake = counted_wake
    flush = link_cls.flush

    def counted_flush(self: Any) -> bool:
        if self._corked:  # a batch is held: this is one write
            side = "engine" if threading.current_thread() is threading.main_thread() else "worker"
            with LOCK:
                COUNTS[(side, "corked write")] += 1
        return bool(flush(self))

    link_cls.flush = counted_flush
    import concurrent.futures.thread as pool_module

    pool_cls: Any = pool_module.ThreadPoolExecutor
    pool_cls.submit = _counted("pool submit", pool_cls.submit)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672//")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--linear", action="store_true", help="a linear flow: one request in flight at a time")
    opts = ap.parse_args()
    _instrument()
    exchange = f"count-{uuid.uuid4().hex[:8]}"
    workers = [Worker(opts.url, exchange, "bench", [flowkit_workers.Noop], threads=4) for _ in range(2)]
    threads = [threading.Thread(target=w.run, name=f"worker-{i}") for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    try:
        for w in workers:
            w.wait(10)

        def run(n: int) -> None:
            make = side.linear_flow if opts.linear else side.unordered_flow
            flow = make("u").add(*(side.noop(f"t{i}") for i in range(n)))
            side.load(flow, opts.url, exchange, "bench").run()

        run(50)  # warm-up: connections, discovery
        COUNTS.clear()
        start = time.perf_counter()
        run(opts.n)
        took = time.perf_counter() - start
    finally:
        for w in workers:
            w.stop()
        for thread in threads:
            thread.join(30)
        side.cleanup(opts.url, exchange)
    print(
        f"{opts.n} tasks in {took:.2f} s ({opts.n / took:,.0f} tasks/s, workers on threads of this process)"
    )
    for (where, what), count in sorted(COUNTS.items()):
        print(f"  {where:6} {what:12} {count / opts.n:6.2f} per task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
