"""A RabbitMQ cut in the middle of a backlog, N times: what the tasks themselves say happened.

Each run starts worker processes and a worker-based engine that reach RabbitMQ through a TCP proxy
(``tests/tcp_proxy.py``; the shared broker is never stopped), runs an unordered flow of ``--tasks``
tasks of ``--pause`` seconds, cuts every connection for ``--cut`` seconds once a few tasks ran, and
waits for the flow to end. Tasks (``tests.worker_tasks.Ledger``) append a line to a file per execute
and per revert, so the counts come from what ran, not from what the engine believes:

- lost: the flow succeeded but the task never ran;
- twice: the task's execute ran more than once;
- not reverted: the flow did not succeed, the task ran, and its revert never ran.

Then a fresh flow connected straight to the broker must run on the same workers (they recovered).
Run from the repository root or ``bench/`` with the repo's ``.venv``::

    .venv/bin/python bench/faults_brokercut.py --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import kombu  # noqa: E402

from flowkit import UnorderedFlow, engines  # noqa: E402
from flowkit.workers import topology  # noqa: E402
from flowkit.workers.tasks import resolve_tasks, task_path  # noqa: E402
from tests import worker_tasks as wt  # noqa: E402
from tests.support import tasks  # noqa: E402
from tests.support.background import Background  # noqa: E402
from tests.support.dispatchers import worker_options  # noqa: E402
from tests.support.workers import TASK_MODULES  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

TOPIC = "cut"
URL = os.environ.get("FLOWKIT_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


def start_worker(url: str, exchange: str, threads: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowkit.workers.cli",
                "--transport",
                url,
                "--exchange",
                exchange,
                "--topic",
                TOPIC,
                "--tasks",
                ",".join(TASK_MODULES),
                "--threads",
                str(threads),
                "--heartbeat",
                "0.5",
                "--log-level",
                os.environ.get("FLOWKIT_BENCH_WORKER_LOG", "INFO"),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def one_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port = int(URL.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(("127.0.0.1", port))
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    exchange = f"fk-cut-{uuid.uuid4().hex[:10]}"
    marks = work / "marks"
    marks.mkdir(parents=True)
    logs = [work / f"worker-{i}.log" for i in range(args.workers)]
    procs = [start_worker(url, exchange, args.threads, log) for log in logs]
    out: dict[str, Any] = {}
    try:
        if not wait_until(lambda: all(": ready" in log.read_text() for log in logs), 20):
            raise RuntimeError("the workers did not start")
        names = [f"t{i}" for i in range(args.tasks)]
        flow = UnorderedFlow("cut").add(*(wt.Ledger(name=n) for n in names))
        options = worker_options(exchange, TOPIC, args.transition_timeout, transport=url)
        engine = engines.load(flow, store={"marker_dir": str(marks), "pause": args.pause}, **options)
        started = time.monotonic()
        run = Background(engine.run, name="cut-run")
        wait_until(lambda: len(list(marks.glob("ran-*"))) >= args.threads * args.workers + 4, 30)
        proxy.cut_for(args.cut)
        out["hung"] = not run.wait(args.cut + args.transition_timeout * 3 + args.tasks * args.pause)
        out["seconds"] = round(time.monotonic() - started, 1)
        state = engine.storage.flow_state
        out["outcome"] = state.name
        ok = state.name == "SUCCESS"
        ran = {n: lines(marks / f"ran-{n}") for n in names}
        reverted = {n: lines(marks / f"reverted-{n}") for n in names}
        out["ran"] = sum(1 for n in names if ran[n])
        out["lost"] = sum(1 for n in names if ok and not ran[n])
        out["twice"] = sum(1 for n in names if ran[n] > 1)
        out["not_reverted"] = sum(1 for n in names if not ok and ran[n] and not reverted[n])
        error = run.errors[0] if run.errors else None
        out["error"] = f"{type(error).__name__}: {str(error)[:300]}" if error else ""
        # The workers recovered: a new flow connected straight to the broker runs on them.
        after = engines.load(
            UnorderedFlow("after").add(*(tasks.Add(name=f"a{i}", provides=f"s{i}") for i in range(8))),
            store={"x": 1, "y": 2},
            **worker_options(exchange, TOPIC, 10, transport=URL),
        )
        try:
            after.run()
            out["fresh_flow"] = "ok"
        except Exception as exc:
            out["fresh_flow"] = f"FAILED ({type(exc).__name__})"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
        proxy.close()
        with kombu.Connection(URL) as conn:
            channel = conn.channel()
            for cls in resolve_tasks(list(TASK_MODULES)):
                with contextlib.suppress(Exception):
                    channel.queue_delete(topology.task_queue(exchange, TOPIC, task_path(cls)))
            topology.delete_exchanges(conn.channel(), exchange)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tasks", type=int, default=60)
    p.add_argument("--pause", type=float, default=0.3, help="seconds each task sleeps")
    p.add_argument("--cut", type=float, default=6.0, help="seconds the broker is unreachable")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--transition-timeout", type=float, default=20.0)
    p.add_argument("--keep", help="copy each run's worker logs and task ledger under this directory")
    args = p.parse_args()
    print("run  outcome    s     ran  lost  twice  not-reverted  fresh-flow  error", flush=True)
    totals = {"lost": 0, "twice": 0, "not_reverted": 0}
    for i in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="fk-cut-") as tmp:
            r = one_run(args, Path(tmp))
            if args.keep:
                shutil.copytree(tmp, Path(args.keep) / f"run-{i}")
        for k in totals:
            totals[k] += r[k]
        outcome = "HUNG" if r["hung"] else r["outcome"]
        print(
            f"{i:>3}  {outcome:<9} {r['seconds']:>5}  {r['ran']:>4}  {r['lost']:>4}  {r['twice']:>5}  "
            f"{r['not_reverted']:>12}  {r['fresh_flow']:<10}  {r['error']}",
            flush=True,
        )
    print(f"total: lost {totals['lost']}, run twice {totals['twice']}, not reverted {totals['not_reverted']}")


if __name__ == "__main__":
    main()
