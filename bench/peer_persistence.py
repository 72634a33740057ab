"""Persistence cases on TaskFlow 6.5.0: its SQLAlchemy backend on a SQLite file and on PostgreSQL.

Runs inside ``.bench/taskflow-venv`` (see ``_peer.py``); the workload, timing and counters are in
``_harness_persistence`` (shared with ``flowkit_persistence.py``). TaskFlow gets its own PostgreSQL
database. ``engines.load(flow, backend=...)`` creates a logbook and a flow detail, as flowkit's does.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from _harness_persistence import main
from peer_core import Noop
from taskflow import engines, states
from taskflow.patterns import linear_flow
from taskflow.persistence import backends


class TaskFlowSide:
    """The ``_harness_persistence.Side`` for TaskFlow."""

    def open(self, url: str) -> Any:
        backend = backends.fetch({"connection": url})
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
        return backend

    def sa_engine(self, backend: Any) -> Any:
        return backend.engine

    def close(self, backend: Any) -> None:
        backend.close()

    def linear(self, n: int) -> Any:
        return linear_flow.Flow("linear").add(*(Noop(name=f"t{i}") for i in range(n)))

    def load(self, flow: Any, backend: Any) -> Any:
        return engines.load(flow, backend=backend, engine="serial")

    def done(self, engine: Any, n: int) -> bool:
        return bool(engine.storage.get_atom_state(f"t{n - 1}") == states.SUCCESS)


if __name__ == "__main__":
    argv: Sequence[str] = sys.argv[1:]
    sys.exit(main(TaskFlowSide(), "taskflow 6.5.0", "taskflow_persistence", argv))
