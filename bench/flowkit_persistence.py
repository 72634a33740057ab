"""Persistence cases on flowkit: a linear flow of N no-op tasks, every state change saved.

Runs in the repo's ``.venv``; the workload, timing and counters are in ``_harness_persistence`` (shared
with ``peer_persistence.py``). Prints ``{case: {n: {"total_s", "per_task_us", "statements_per_task",
"commits_per_task", ...}}}`` for ``sqlite`` (a file) and ``postgresql`` (loopback).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from _harness_persistence import main
from flowkit_core import Noop

from flowkit import LinearFlow, engines
from flowkit.persistence import backends
from flowkit.states import AtomState


class FlowkitSide:
    """The ``_harness_persistence.Side`` for flowkit."""

    def open(self, url: str) -> Any:
        backend = backends.fetch(url)
        with backend.get_connection() as conn:
            conn.upgrade()
        return backend

    def sa_engine(self, backend: Any) -> Any:
        return backend.engine

    def close(self, backend: Any) -> None:
        backend.close()

    def linear(self, n: int) -> Any:
        return LinearFlow("linear").add(*(Noop(name=f"t{i}") for i in range(n)))

    def load(self, flow: Any, backend: Any) -> Any:
        return engines.load(flow, backend=backend)  # a new logbook and flow detail, as TaskFlow's does

    def done(self, engine: Any, n: int) -> bool:
        return bool(engine.storage.get_atom_state(f"t{n - 1}") is AtomState.SUCCESS)


if __name__ == "__main__":
    argv: Sequence[str] = sys.argv[1:]
    sys.exit(main(FlowkitSide(), "flowkit", "flowkit_persistence", argv, paired_floor=True))
