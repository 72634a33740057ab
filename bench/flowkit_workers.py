"""The worker-based engine on flowkit: 2 ``flowkit-worker`` processes, the workloads of ``_harness_workers``.

Runs in the repo's ``.venv``; prints one JSON object on stdout (see ``_harness_workers``). The workers
import the task class from this module (``--tasks flowkit_workers:Noop``, started in ``bench/``), so the
engine side must name it by the same path: ``main`` imports this file as the module ``flowkit_workers``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from _harness_workers import log, parse_options, run

from flowkit import LinearFlow, Task, UnorderedFlow, engines
from flowkit.notifier import ANY


class Noop(Task):
    """A task that does nothing, so only the engine's and the wire's overhead is measured."""

    def execute(self) -> None:
        return None


class FlowkitSide:
    name = "flowkit"

    def __init__(self, noop: type[Task]) -> None:
        self._noop = noop

    def worker_command(self, url: str, exchange: str, topic: str, threads: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flowkit.workers.cli",
            "--transport",
            url,
            "--exchange",
            exchange,
            "--topic",
            topic,
            "--tasks",
            "flowkit_workers:Noop",
            "--threads",
            str(threads),
            "--log-level",
            "WARNING",
        ]

    def noop(self, name: str) -> Any:
        return self._noop(name=name)

    def linear_flow(self, name: str) -> Any:
        return LinearFlow(name)

    def unordered_flow(self, name: str) -> Any:
        return UnorderedFlow(name)

    def load(self, flow: Any, url: str, exchange: str, topic: str) -> Any:
        return engines.load(
            flow,
            engine="worker-based",
            transport=url,
            exchange=exchange,
            topics=[topic],
            transition_timeout=60,
        )

    def watch(self, engine: Any, callback: Callable[[str, str], None]) -> None:
        engine.atom_notifier.register(
            ANY,
            lambda state, details: callback(
                str(getattr(state, "value", state)).upper(), details["atom_name"]
            ),
        )

    def cleanup(self, url: str, exchange: str) -> None:
        import kombu

        from flowkit.workers import topology

        with kombu.Connection(url) as conn:
            topology.delete_exchanges(conn.channel(), exchange)


def main(argv: Sequence[str] | None = None) -> int:
    import flowkit_workers  # the task class by its importable name, as the workers know it

    opts = parse_options(argv)
    log(f"flowkit workers: {opts.workers} x {opts.threads} threads, cases={opts.cases}")
    results = run(FlowkitSide(flowkit_workers.Noop), opts, flowkit_workers_dir())
    sys.stdout.write(json.dumps(results) + "\n")
    return 0


def flowkit_workers_dir() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent


if __name__ == "__main__":
    sys.exit(main())
