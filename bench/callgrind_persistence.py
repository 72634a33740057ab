"""A deterministic count of the persistence path's work: instructions under callgrind, not time.

The machine the bench runs on is shared and loaded, so per-task times move by 2x between runs. This
script is the workload to count instructions of instead: load + compile + prepare + run of a linear
flow of N no-op tasks on a SQLite file (after a 20-task warm-up, with the schema already there), each
run inside ``sys.call_tracing``, so that callgrind counts exactly what the bench times (not the flow's
construction, the imports or the backend's opening). Per run of N tasks, and the floor's the same way::

    for args in "100 --runs 5" "1000" "--floor 100 --runs 5" "--floor 1000"; do
        valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sys_call_tracing \
            .venv/bin/python bench/callgrind_persistence.py $args 2>&1 | grep Collected; done

Per task = (count(1000) - count(100) per run) / 900, per run = count(100) per run - 100 x per task.
Before this way of counting (whole processes, N=0 subtracted):
(issue 13: 973M instructions per 1,000 tasks before the prepared statements, 552M after; 517M before
the recorder's direct RUNNING/SUCCESS columns and the None-free binds, ~390M after; 361M -> 334M with
cached timestamp texts, cheaper atom uuids and rows, and durable points that flush the WAL file instead
of switching ``PRAGMA synchronous``, which expires every prepared statement of the connection. With
``PYTHONHASHSEED=0`` the counts repeat to a few 0.1%; N=100 counts the per-run set-up once per 100
tasks: 373k -> 363k per task). Then 324k -> 286k per task at N=1,000 and 347k -> 298k at N=100 with
no SQLAlchemy event calls when nothing listens, a SQLite backend that keeps its relaxed connection
between runs (no ``PRAGMA synchronous``, so no statement compiled again per run) and runs the set-up
on it, atom rows inserted 16 to a statement with the values they share bound once, and BEGIN/COMMIT
on the DB-API cursor (the floor: 64.2k / 57.9k per task, so 4.5x / 5.1x of it).

Counted so (issue 13, target 2): 228.9k per task + 1.40M per run before atom rows built column by
column and the recorder's atom write path spelled out, 212.6k + 1.52M after; 203.2k + 1.58M with new
atom details made from a template, the flow's uuid prefix hashed once, timestamps' microseconds from
tables (N=1,000: 230.3k -> 204.8k per task, N=100: 242.9k -> 219.0k); the floor 47.2k per task
(N=1,000; 50.4k at N=100), so 4.9x -> 4.3x of it in instructions.

``--floor`` counts the two-commit floor instead (``limit_persistence.py``'s statements: two autocommit
single-row UPDATEs per task on the bare ``sqlite3`` driver, WAL, ``synchronous=NORMAL``; its rows
inserted first, as there): 64-66M per 1,000 tasks. For reference, the same flows on the in-memory
engine (no backend) count about 114M per 1,000 tasks, the flows' construction included.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowkit_core import Noop

from flowkit import LinearFlow, engines
from flowkit.persistence import backends


def _counted(fn: Callable[[], None]) -> None:
    """Run ``fn`` inside ``sys.call_tracing``: under ``--collect-atstart=no
    --toggle-collect=sys_call_tracing`` callgrind counts what it does and nothing else."""
    sys.call_tracing(fn, ())


def floor(n: int, runs: int = 1) -> None:
    """The floor's workload (see limit_persistence.py), after the same 20-task warm-up; the UPDATEs
    of the ``runs`` runs of ``n`` are what ``_counted`` counts (the rows inserted first are not)."""
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE atoms (id INTEGER PRIMARY KEY, state TEXT NOT NULL, result TEXT)")
        cur = conn.cursor()
        update = "UPDATE atoms SET state = ?, result = ? WHERE id = ?"

        def updates(k: int) -> None:
            for i in range(k):
                cur.execute(update, ("RUNNING", None, i))
                cur.execute(update, ("SUCCESS", "null", i))

        for k, count in ((20, 0), *((n, 1) for _ in range(runs))):
            cur.execute("DELETE FROM atoms")
            cur.executemany("INSERT INTO atoms (id, state) VALUES (?, 'PENDING')", [(i,) for i in range(k)])
            if count:
                _counted(lambda k=k: updates(k))
            else:
                updates(k)
        conn.close()


def main(n: int, runs: int = 1) -> None:
    """``runs`` runs of ``n`` tasks after the warm-up; each run's load, compile, prepare and run (what
    the bench times) is what ``_counted`` counts, the flow's construction is not."""
    with tempfile.TemporaryDirectory() as tmp:
        backend = backends.fetch(f"sqlite:///{tmp}/callgrind.db")
        with backend.get_connection() as conn:
            conn.upgrade()

        def run(flow: LinearFlow) -> None:
            engine = engines.load(flow, backend=backend)
            engine.compile()
            engine.prepare()
            engine.run()

        run(LinearFlow("linear").add(*(Noop(name=f"t{i}") for i in range(20))))
        for _ in range(runs if n else 0):
            flow = LinearFlow("linear").add(*(Noop(name=f"t{i}") for i in range(n)))
            _counted(lambda flow=flow: run(flow))
        backend.close()


if __name__ == "__main__":
    # [--floor] [--runs R] N; count with --collect-atstart=no --toggle-collect=sys_call_tracing
    argv = sys.argv[1:]
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 1
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or argv[i - 1] != "--runs")]
    size = int(args[0]) if args else 1000
    (floor if "--floor" in argv else main)(size, runs)
