"""Not a suite: CPU time per task on each side of the worker suite's workload (1,000 unordered no-op
tasks, 2 ``flowkit-worker`` processes x 4 threads), because on 2 shared cores the engine, both workers
and RabbitMQ compete for the same CPU, so what each side burns per task is what bounds tasks/s, and it
is far less noisy than wall-clock time.

Engine: ``getrusage(RUSAGE_SELF)`` around ``engines.load`` + ``run()`` (this process; the workers are
child processes). Workers: user + system time of both processes from ``/proc/<pid>/stat`` (10 ms ticks,
so many tasks are run). RabbitMQ: the same of its ``beam.smp``, when visible (shared with the other
users of the broker: indicative only). ``--strace`` runs the workers under ``strace -f -c`` and prints
their system calls per task (the engine's: ``strace -f -c`` around ``count_workers.py``).

    .venv/bin/python bench/cpu_workers.py [--n 1000] [--runs 5] [--strace]
"""

from __future__ import annotations

import argparse
import os
import resource
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
    ap.add_argument("--strace", action="store_true", help="workers under strace -f -c: syscalls per task")
    opts = ap.parse_args()
    import flowkit_workers

    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    exchange = f"cpu-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="fk-cpu-"))
    procs = []
    for i in range(2):
        cmd = side.worker_command(opts.url, exchange, "bench", 4)
        if opts.strace:
            cmd = ["strace", "-f", "-c", "-o", str(tmp / f"worker{i}.strace"), *cmd]
        procs.append(subprocess.Popen(cmd, cwd=HERE))
    beam = _beam_pid()
    rows: list[tuple[float, float, float, float]] = []
    try:
        time.sleep(2.5 if opts.strace else 2.0)
        run(side, opts.url, exchange, 100)  # warm-up
        for _ in range(opts.runs):
            w0 = sum(_proc_cpu(p.pid) for p in procs)
            b0 = _proc_cpu(beam) if beam else 0.0
            e0, t0 = _self_cpu(), time.perf_counter()
            run(side, opts.url, exchange, opts.n)
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
        total_tasks = opts.n * opts.runs + 100
        for i in range(2):
            lines = (tmp / f"worker{i}.strace").read_text().splitlines()
            total = next((ln for ln in lines if ln.strip().endswith("total")), "")
            calls = int(total.split()[2]) if total else 0
            print(f"worker{i}: {calls} system calls, {calls / total_tasks * 2:.1f} per task it ran (~half)")
            print("\n".join(lines[:12]))
    return 0


def run(side: object, url: str, exchange: str, n: int) -> None:
    flow = side.unordered_flow("u").add(*(side.noop(f"t{i}") for i in range(n)))  # type: ignore[attr-defined]
    side.load(flow, url, exchange, "bench").run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
