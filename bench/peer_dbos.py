"""Durable steps on DBOS Transact 3.4.0: a workflow of N no-op steps on a SQLite file and on PostgreSQL.

Runs inside ``.bench/dbos-venv`` (see ``_peer.py``). The comparison with flowkit's persistence suite: a
DBOS step is checkpointed in its system database before the workflow goes on, as a flowkit atom's
transitions are saved before the engine acts on them; both are per-task costs of a durable linear flow.
Timed: the workflow call (start, N steps, end) with DBOS launched and its schema created, as a service
would have it; one untimed 200-step workflow first. Prints ``{case: {str(n): entry}}`` on stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from _harness import emit, guarded, log, median_of
from _harness_persistence import WARMUP_N, drop_postgres, postgres_url, sqlite_url
from dbos import DBOS

CASES = ("sqlite", "postgresql")


def _launch(url: str) -> Any:
    """A launched DBOS on ``url`` with a workflow of N no-op steps registered; returns the workflow."""
    DBOS(config={"name": "flowkit-bench", "system_database_url": url, "log_level": "WARNING"})

    @DBOS.step()
    def noop_step() -> None:
        return None

    @DBOS.workflow()
    def linear(n: int) -> int:
        for _ in range(n):
            noop_step()
        return n

    DBOS.launch()
    return linear


def _once(workflow: Any, n: int) -> dict[str, float]:
    start = time.perf_counter()
    done = workflow(n)
    total = time.perf_counter() - start
    if done != n:
        raise AssertionError(f"workflow returned {done!r}, expected {n}")
    return {"total_s": total}


def _measure(url: str, case: str, sizes: Sequence[int], repeat: int) -> dict[str, Any]:
    workflow = _launch(url)
    try:
        guarded(f"{case} warm-up", lambda: median_of(WARMUP_N, 1, lambda: _once(workflow, WARMUP_N)))
        return {
            str(n): guarded(f"{case} n={n}", lambda n=n: median_of(n, repeat, lambda: _once(workflow, n)))
            for n in sizes
        }
    finally:
        DBOS.destroy(destroy_registry=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="durable steps on DBOS")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--large-repeat", type=int, default=None)
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver; DBOS runs its own threads")
    a = p.parse_args(argv)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    results: dict[str, Any] = {}
    for case in (c for c in a.cases.split(",") if c):
        if case == "sqlite":
            results[case] = _measure(sqlite_url("dbos_sqlite"), case, sizes, max(1, a.repeat))
        elif case == "postgresql":
            dbname = "dbos_bench"
            url = postgres_url(dbname).replace("postgresql+psycopg2://", "postgresql://")
            try:
                results[case] = _measure(url, case, sizes, max(1, a.repeat))
            finally:
                drop_postgres(dbname)
        else:
            raise SystemExit(f"unknown case {case!r}; known: {', '.join(CASES)}")
    log(f"dbos: {results}")
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
