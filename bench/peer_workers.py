"""TaskFlow 6.5.0's worker-based engine: 2 TaskFlow worker processes, the workloads of ``_harness_workers``.

Runs inside ``.bench/taskflow-venv`` (see ``_peer.py``); prints one JSON object on stdout. ``--worker``
runs one TaskFlow worker (that is how the harness starts them). The task class is imported from this
file as the module ``peer_workers`` on both sides, so TaskFlow names it the same way in both processes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _harness_workers import log, parse_options, run
from taskflow import engines, task
from taskflow.patterns import linear_flow, unordered_flow


class Noop(task.Task):
    """A task that does nothing, so only the engine's and the wire's overhead is measured."""

    def execute(self) -> None:
        return None


class TaskFlowSide:
    name = "taskflow"

    def __init__(self, noop: type[task.Task]) -> None:
        self._noop = noop

    def worker_command(self, url: str, exchange: str, topic: str, threads: int) -> list[str]:
        return [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--url",
            url,
            "--exchange",
            exchange,
            "--topic",
            topic,
            "--threads",
            str(threads),
        ]

    def noop(self, name: str) -> Any:
        return self._noop(name=name)

    def linear_flow(self, name: str) -> Any:
        return linear_flow.Flow(name)

    def unordered_flow(self, name: str) -> Any:
        return unordered_flow.Flow(name)

    def load(self, flow: Any, url: str, exchange: str, topic: str) -> Any:
        return engines.load(
            flow, engine="worker-based", url=url, exchange=exchange, topics=[topic], transition_timeout=60
        )

    def watch(self, engine: Any, callback: Callable[[str, str], None]) -> None:
        engine.atom_notifier.register(
            "*", lambda state, details: callback(str(state).upper(), details["task_name"])
        )

    def cleanup(self, url: str, exchange: str) -> None:
        return None  # TaskFlow declares its exchange and queues auto-delete


def worker_main(argv: Sequence[str]) -> int:
    import peer_workers
    from taskflow.engines.worker_based import worker

    p = argparse.ArgumentParser()
    p.add_argument("--worker", action="store_true")
    p.add_argument("--url", required=True)
    p.add_argument("--exchange", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--threads", type=int, default=4)
    a = p.parse_args(argv)
    w = worker.Worker(
        exchange=a.exchange, topic=a.topic, tasks=[peer_workers.Noop], url=a.url, threads_count=a.threads
    )
    try:
        w.run()
    finally:
        w.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--worker" in args:
        return worker_main(args)
    import peer_workers

    opts = parse_options(args)
    log(f"TaskFlow workers: {opts.workers} x {opts.threads} threads, cases={opts.cases}")
    results = run(TaskFlowSide(peer_workers.Noop), opts, Path(__file__).resolve().parent)
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
