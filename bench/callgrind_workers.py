"""A deterministic count of one round trip's work on each side: instructions under callgrind.

The suite's ``linear`` case (one request in flight) at two sizes; (collected at N2 - at N1) / (N2 - N1)
is the cost of one round trip on that side, without start-up, warm-up and connecting. Wall-clock round
trips on the shared 2-core machine move by 2x between runs; these counts do not. They miss what the
kernel does (system calls, wake-ups: count those with ``cpu_workers.py --strace``).

- ``engine``: this process runs the engine (callgrind collects inside ``sys.call_tracing``, around
  ``engine.run()``); one plain ``flowkit-worker`` serves it.
- ``worker``: this process runs one worker of 4 threads (collected: its loop and its task threads,
  each inside ``sys.call_tracing``); a plain engine process drives it (``--drive``).
- ``echo``: the raw kombu echo of ``limit_workers.py`` (its serving loop collected), driven by its
  client in a plain process: the floor's worker side. ``echo-client``: that client (collected), served
  by a plain echo: the floor's engine side.

    for n in 100 400; do valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sys_call_tracing \\
        --callgrind-out-file=/tmp/cg.worker.$n .venv/bin/python bench/callgrind_workers.py worker $n \\
        2>&1 | grep Collected; done
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
URL = os.environ.get("FLOWKIT_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
WARMUP = 20


def _linear(exchange: str, n: int, collected: bool = False) -> None:
    import flowkit_workers

    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    flow = side.linear_flow("l").add(*(side.noop(f"t{i}") for i in range(n)))
    engine = side.load(flow, URL, exchange, "bench")
    if collected:
        sys.call_tracing(engine.run, ())
    else:
        engine.run()


def engine(n: int) -> None:
    import flowkit_workers

    exchange = f"cg-{uuid.uuid4().hex[:8]}"
    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    proc = subprocess.Popen(side.worker_command(URL, exchange, "bench", 4), cwd=HERE)
    try:
        time.sleep(2.0)
        _linear(exchange, WARMUP)
        _linear(exchange, n, collected=True)
    finally:
        proc.terminate()
        proc.wait(15)
        side.cleanup(URL, exchange)


def worker(n: int) -> None:
    import flowkit_workers

    from flowkit.workers.worker import Worker

    exchange = f"cg-{uuid.uuid4().hex[:8]}"
    job = Worker._job

    def collected_job(self: Any, *args: Any) -> None:
        sys.call_tracing(job, (self, *args))

    Worker._job = collected_job  # type: ignore[method-assign]
    w = Worker(URL, exchange, "bench", [flowkit_workers.Noop], threads=4)

    def drive() -> None:
        w.wait(600)
        subprocess.run([sys.executable, __file__, "--drive", exchange, str(n)], check=True)
        w.stop()

    threading.Thread(target=drive, daemon=True).start()
    sys.call_tracing(w.run, ())
    flowkit_workers.FlowkitSide(flowkit_workers.Noop).cleanup(URL, exchange)


def drive(exchange: str, n: int) -> None:
    time.sleep(1.0)
    _linear(exchange, WARMUP)
    _linear(exchange, n)


def echo(n: int, serve: bool) -> None:
    import limit_workers
    from kombu import Connection

    queue = f"cg-echo-{uuid.uuid4().hex[:8]}"
    if serve:
        driver = subprocess.Popen([sys.executable, __file__, "--echo-drive", queue, str(n)])
        with contextlib.suppress(KeyboardInterrupt):
            sys.call_tracing(limit_workers.serve, (queue,))
        driver.wait()
        return
    proc = subprocess.Popen(
        [sys.executable, limit_workers.__file__, "--serve", queue], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        with Connection(limit_workers.URL) as conn:
            client = limit_workers._Client(conn, [queue])
            limit_workers._linear(client, WARMUP)
            sys.call_tracing(limit_workers._linear, (client, n))
    finally:
        proc.kill()
        proc.wait()


def echo_drive(queue: str, n: int) -> None:
    """The client of a collected echo: waits for its queue, runs, then stops it (SIGINT)."""
    import signal

    import limit_workers
    from kombu import Connection

    with Connection(limit_workers.URL) as conn:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                conn.channel().queue_declare(queue, passive=True)
                break
            except Exception:
                time.sleep(0.5)
        time.sleep(1.0)
        client = limit_workers._Client(conn, [queue])
        limit_workers._linear(client, WARMUP)
        limit_workers._linear(client, n)
    os.kill(os.getppid(), signal.SIGINT)


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "--drive":
        drive(rest[0], int(rest[1]))
    elif role == "--echo-drive":
        echo_drive(rest[0], int(rest[1]))
    elif role == "engine":
        engine(int(rest[0]))
    elif role == "worker":
        worker(int(rest[0]))
    elif role in ("echo", "echo-client"):
        echo(int(rest[0]), serve=role == "echo")
    else:
        raise SystemExit(f"unknown role {role!r}")
