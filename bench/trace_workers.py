"""Not a suite: where one round trip's time goes, by timestamps along its way in both processes.

The worker suite's ``linear`` case (one request in flight; 2 ``flowkit-worker`` processes x 4 threads),
with the engine here and each worker started by this script (``--worker``), both instrumented: every
step stamps ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, the same clock in every process of the host).
After the runs the stamps of all processes are merged by time and cut into round trips (the atom's
RUNNING to its SUCCESS, as the suite measures them); per step the median time since the step before it
is printed, in the order the steps came. ``--echo`` does the same for the raw kombu echo of
``limit_workers.py`` (client publish -> echo -> client), the floor the suite compares with.

    .venv/bin/python bench/trace_workers.py [--n 300] [--runs 3] [--echo]

The stamps themselves cost ~1 us each: compare steps, not the totals with the suite's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
URL = os.environ.get("FLOWKIT_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")

STAMPS: list[tuple[str, int]] = []
_now = time.perf_counter_ns


def stamp(name: str) -> None:
    STAMPS.append((name, _now()))


def _around(owner: Any, attr: str, before: str | None, after: str | None = None) -> None:
    fn = getattr(owner, attr)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            stamp(before)
        try:
            return fn(*args, **kwargs)
        finally:
            if after:
                stamp(after)

    setattr(owner, attr, wrapped)


def _instrument_link(prefix: str) -> None:
    import select as real_select

    from flowkit.workers import link as link_module

    class _Select:
        @staticmethod
        def select(r: Any, w: Any, x: Any, timeout: Any = None) -> Any:
            ready = real_select.select(r, w, x, timeout)
            if ready[0]:
                main = threading.current_thread() is threading.main_thread()
                stamp(f"{prefix}.select" if main else f"{prefix}.select(thread)")
            return ready

    link_module.select = _Select  # type: ignore[assignment]
    flush = link_module.Link.flush

    def counted_flush(self: Any) -> bool:
        held = bool(self._corked)
        ok = bool(flush(self))
        if held:
            main = threading.current_thread() is threading.main_thread()
            stamp(f"{prefix}.write" if main else f"{prefix}.write(thread)")
        return ok

    link_module.Link.flush = counted_flush  # type: ignore[method-assign]


def _dump(path: str) -> None:
    Path(path).write_text(json.dumps(STAMPS))


# -- the worker process ------------------------------------------------------------------------------------


def worker_main(out: str, args: list[str]) -> int:
    from flowkit.workers import cli
    from flowkit.workers import worker as worker_module

    _instrument_link("w")
    W = worker_module.Worker
    _around(W, "_handle_request", "w.handle")
    _around(W, "_start_next", "w.start_next>", "w.start_next<")
    _around(W, "_job", "w.job(thread)")
    _around(W, "_post", "w.post(thread)")
    _around(worker_module, "call_task", "w.call>(thread)", "w.call<(thread)")
    try:
        cli.main(args, standalone_mode=False)
    finally:
        _dump(out)
    return 0


# -- the echo --------------------------------------------------------------------------------------------


def echo_main(out: str, queue_name: str) -> int:
    import signal

    import limit_workers
    from kombu import Connection, Consumer, Exchange, Producer, Queue

    signal.signal(signal.SIGTERM, lambda *_: (_dump(out), os._exit(0)))
    with Connection(limit_workers.URL) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(""), serializer="json")

        def echo(body: Any, message: Any) -> None:
            stamp("x.callback")
            producer.publish(
                body,
                routing_key=message.properties["reply_to"],
                correlation_id=message.properties["correlation_id"],
            )
            stamp("x.published")
            message.ack()

        with Consumer(
            conn.channel(), [Queue(queue_name, auto_delete=True)], callbacks=[echo], prefetch_count=8
        ):
            print("ready", flush=True)
            while True:
                conn.drain_events()


def run_echo(n: int, runs: int, tmp: Path) -> None:
    import limit_workers
    from kombu import Connection

    queues = [f"trace-echo-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--echo-serve", q, "--out", str(tmp / f"echo{k}.json")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k, q in enumerate(queues)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with Connection(limit_workers.URL) as conn:
            client = limit_workers._Client(conn, queues)
            _around(client, "send", "e.RUNNING", "e.sent")
            _around(client, "_done", "e.SUCCESS")
            client.consumer.callbacks = [client._done]
            limit_workers._unordered(client, 50)
            STAMPS.clear()
            for _ in range(runs):
                limit_workers._linear(client, n)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


# -- the engine ------------------------------------------------------------------------------------------


def run_flowkit(n: int, runs: int, tmp: Path) -> None:
    import flowkit_workers

    from flowkit.workers import dispatcher as dispatcher_module

    _instrument_link("e")
    D = dispatcher_module.WorkerDispatcher
    _around(D, "submit", "e.submit>", "e.submit<")
    _around(D, "wait", "e.wait>", "e.wait<")
    _around(D, "_drain_inbox", "e.inbox")
    _around(D, "_finish", "e.finish")
    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    exchange = f"trace-{uuid.uuid4().hex[:8]}"
    procs = []
    for k in range(2):
        cmd = side.worker_command(URL, exchange, "bench", 4)
        args = cmd[cmd.index("flowkit.workers.cli") + 1 :]
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", "--out", str(tmp / f"worker{k}.json"), "--", *args],
                cwd=HERE,
            )
        )
    try:
        time.sleep(2.0)

        def one(count: int) -> None:
            flow = side.linear_flow("l").add(*(side.noop(f"t{i}") for i in range(count)))
            engine = side.load(flow, URL, exchange, "bench")
            side.watch(
                engine, lambda state, _atom: stamp(f"e.{state}") if state in ("RUNNING", "SUCCESS") else None
            )
            engine.run()

        one(50)
        STAMPS.clear()
        for _ in range(runs):
            one(n)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        side.cleanup(URL, exchange)


# -- the analysis ----------------------------------------------------------------------------------------


def analyse(files: list[Path]) -> None:
    stamps = list(STAMPS)
    for f in files:
        if f.exists():
            stamps.extend((name, t) for name, t in json.loads(f.read_text()))
    stamps.sort(key=lambda s: s[1])
    trips: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] | None = None
    for name, t in stamps:
        if name == "e.RUNNING":
            current = [(name, t)]
        elif current is not None:
            current.append((name, t))
            if name == "e.SUCCESS":
                trips.append(current)
                current = None
    if not trips:
        print("no round trips found")
        return
    steps: dict[str, list[float]] = defaultdict(list)
    order: dict[str, float] = defaultdict(float)
    totals = []
    for trip in trips:
        t0 = trip[0][1]
        totals.append((trip[-1][1] - t0) / 1e3)
        seen: dict[str, int] = {}
        for (_a, ta), (b, tb) in itertools.pairwise(trip):
            k = seen[b] = seen.get(b, 0) + 1
            key = b if k == 1 else f"{b}#{k}"
            steps[key].append((tb - ta) / 1e3)
            order[key] += (tb - t0) / 1e3
    totals.sort()
    print(
        f"{len(trips)} round trips: p50 {totals[len(totals) // 2]:.0f} us, "
        f"p99 {totals[min(len(totals) - 1, int(len(totals) * 0.99))]:.0f} us"
    )
    print(f"  {'step (time since the step before)':40} {'seen':>6} {'p50 us':>8} {'mean us':>8} {'at us':>8}")
    for key in sorted(steps, key=lambda k: order[k] / len(steps[k])):
        values = steps[key]
        print(
            f"  {key:40} {len(values):6} {statistics.median(values):8.1f} {statistics.fmean(values):8.1f} "
            f"{order[key] / len(values):8.0f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--echo", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--echo-serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_main(a.out, a.rest)
    if a.echo_serve:
        return echo_main(a.out, a.echo_serve)
    tmp = Path(tempfile.mkdtemp(prefix="fk-trace-"))
    run: Callable[[int, int, Path], None] = run_echo if a.echo else run_flowkit
    run(a.n, a.runs, tmp)
    time.sleep(0.5)
    analyse(sorted(tmp.glob("*.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
