"""Not a suite: counts and profiles one worker-suite workload (1,000 unordered no-op tasks, 2 workers x 4
threads) on both sides, because the shared machine makes timings noisy and call counts are not.

Prints per task, for the engine and for the workers: AMQP publishes, acks, JSON encodes and decodes,
wake-ups of the connection thread (pipe writes), thread-pool submits; and the top of each side's
cProfile (``--top``). The workers run under ``python -m cProfile`` and write their profile on SIGTERM.

    .venv/bin/python bench/profile_workers.py [--n 1000] [--runs 3] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

COUNTED = {
    "publish": ("flowkit/workers/link.py", "publish"),
    "ack": ("flowkit/workers/link.py", "ack"),
    "encode": ("flowkit/workers/protocol.py", "encode"),
    "decode": ("flowkit/workers/protocol.py", "decode"),
    "wake": ("flowkit/workers/link.py", "wake"),
    "pump": ("flowkit/workers/link.py", "pump"),
    "pool submit": ("concurrent/futures/thread.py", "submit"),
    "kombu publish": ("kombu/messaging.py", "publish"),
    "basic_publish": ("amqp/channel.py", "_basic_publish"),
}


def counts(stats: pstats.Stats, n: int) -> dict[str, float]:
    out = dict.fromkeys(COUNTED, 0.0)
    for (filename, _line, func), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for label, (path, name) in COUNTED.items():
            if func == name and filename.endswith(path):
                out[label] += nc
    return {k: v / n for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672//")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=25)
    opts = ap.parse_args()
    import flowkit_workers

    side = flowkit_workers.FlowkitSide(flowkit_workers.Noop)
    exchange = f"prof-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="fk-prof-"))
    procs = []
    for i in range(2):
        cmd = side.worker_command(opts.url, exchange, "bench", 4)
        cmd[1:1] = ["-m", "cProfile", "-o", str(tmp / f"worker{i}.prof")]
        procs.append(subprocess.Popen(cmd, cwd=HERE))
    time.sleep(2.0)
    prof = cProfile.Profile()
    try:
        side_run(side, opts, exchange, 100, None)  # warm-up, not profiled
        t0 = time.perf_counter()
        for _ in range(opts.runs):
            side_run(side, opts, exchange, opts.n, prof)
        wall = time.perf_counter() - t0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        side.cleanup(opts.url, exchange)
    total = opts.n * opts.runs
    print(f"{total} tasks in {wall:.2f} s ({total / wall:,.0f} tasks/s, profiled)")
    prof.dump_stats(str(tmp / "engine.prof"))
    print(f"profiles in {tmp}")
    engine = pstats.Stats(prof)
    workers = pstats.Stats(*(str(tmp / f"worker{i}.prof") for i in range(2)))
    # The workers' counts include the warm-up run.
    for name, stats, n in (("engine", engine, total), ("workers", workers, total + 100)):
        print(f"\n== {name}, per task: " + ", ".join(f"{k} {v:.2f}" for k, v in counts(stats, n).items()))
        print(f"   cpu per task (profiled): {stats.total_tt / n * 1e6:.0f} us")  # type: ignore[attr-defined]
        if opts.top:
            stats.sort_stats("tottime").print_stats(opts.top)
    return 0


def side_run(
    side: object, opts: argparse.Namespace, exchange: str, n: int, prof: cProfile.Profile | None
) -> None:
    flow = side.unordered_flow("u").add(*(side.noop(f"t{i}") for i in range(n)))  # type: ignore[attr-defined]
    engine = side.load(flow, opts.url, exchange, "bench")  # type: ignore[attr-defined]
    if prof is not None:
        prof.enable()
    engine.run()
    if prof is not None:
        prof.disable()


if __name__ == "__main__":
    sys.exit(main())
