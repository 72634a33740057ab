"""Not a suite: CPU time per task on each side of the worker suite's workload (1,000 unordered no-op
tasks, 2 ``flowkit-worker`` processes x 4 threads), because on 2 shared cores the engine, both workers
and RabbitMQ compete for the same CPU, so what each side burns per task is what bounds tasks/s, and it
is far less noisy than wall-clock time.

Engine: ``getrusage(RUSAGE_SELF)`` around ``engines.load`` + ``run()`` (this process; the workers are
child processes). Workers: user + system time of both processes from ``/proc/<pid>/stat`` (10 ms ticks,
so many tasks are run). RabbitMQ: the same of its ``beam.smp``, when visible (shared with the other
users of the broker: indicative only). ``--strace`` attaches ``strace -f -c`` to the engine (this
process) and to both workers for the measured runs (after the warm-up) and prints system calls per task
on each side (tracing slows every call: CPU figures of that run are not comparable).

    .venv/bin/python bench/cpu_workers.py [--n 1000] [--runs 5] [--strace]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """User + system seconds of process ``pid`` (all its threads); 0.0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _beam_pid() -> int | None:
    out = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True, check=False)
    return int(out.stdout.split()[0]) if out.stdout.strip() else None


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672//")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--linear", action="store_true", help="a linear flow: one request in flight at a time")
    ap.add_argument("--strace", action="store_true", help="workers under strace -f -c: syscalls per task")
    opts = ap.parse_args()
    import flowkit_workers

    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    exchange = f"cpu-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="fk-cpu-"))
    procs = [
        subprocess.Popen(side.worker_command(opts.url, exchange, "bench", 4), cwd=HERE) for _ in range(2)
    ]
    tracers: list[subprocess.Popen[bytes]] = []
    beam = _beam_pid()
    rows: list[tuple[float, float, float, float]] = []
    try:
        time.sleep(2.0)
        run(side, opts.url, exchange, 100, opts.linear)  # warm-up
        if opts.strace:
            for name, pid in (("engine", os.getpid()), ("worker0", procs[0].pid), ("worker1", procs[1].pid)):
                out = str(tmp / f"{name}.strace")
                tracers.append(subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)]))
            time.sleep(1.0)  # attached
        for _ in range(opts.runs):
            w0 = sum(_proc_cpu(p.pid) for p in procs)
            b0 = _proc_cpu(beam) if beam else 0.0
            e0, t0 = _self_cpu(), time.perf_counter()
            run(side, opts.url, exchange, opts.n, opts.linear)
            wall, eng = time.perf_counter() - t0, _self_cpu() - e0
            wrk = sum(_proc_cpu(p.pid) for p in procs) - w0
            rab = (_proc_cpu(beam) - b0) if beam else float("nan")
            rows.append((opts.n / wall, eng / opts.n * 1e6, wrk / opts.n * 1e6, rab / opts.n * 1e6))
            print(
                f"  {rows[-1][0]:7,.0f} tasks/s  engine {rows[-1][1]:5.0f} us/task  workers "
                f"{rows[-1][2]:5.0f} us/task  rabbitmq {rows[-1][3]:5.0f} us/task",
                flush=True,
            )
    finally:
        for tracer in tracers:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(15)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        side.cleanup(opts.url, exchange)
    med = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(
        f"median of {len(rows)}: {med[0]:,.0f} tasks/s; CPU per task: engine {med[1]:.0f} us, "
        f"workers (both) {med[2]:.0f} us, rabbitmq {med[3]:.0f} us"
    )
    if opts.strace:
        tasks = opts.n * opts.runs
        for side_name, files in (("engine", ["engine"]), ("workers (both)", ["worker0", "worker1"])):
            calls: dict[str, int] = {}
            for name in files:
                for line in (tmp / f"{name}.strace").read_text().splitlines()[2:]:
                    cols = line.split()
                    if len(cols) >= 5 and cols[-1] != "total" and cols[3].isdigit():
                        calls[cols[-1]] = calls.get(cols[-1], 0) + int(cols[3])
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
            print(
                f"{side_name}: {sum(calls.values()) / tasks:.1f} system calls per task ("
                + ", ".join(f"{k} {v / tasks:.1f}" for k, v in top)
                + ")"
            )
    return 0


def run(side: object, url: str, exchange: str, n: int, linear: bool = False) -> None:
    make = side.linear_flow if linear else side.unordered_flow  # type: ignore[attr-defined]
    flow = make("u").add(*(side.noop(f"t{i}") for i in range(n)))  # type: ignore[attr-defined]
    side.load(flow, url, exchange, "bench").run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
