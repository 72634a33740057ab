"""A deterministic count of the persistence path's work: instructions under callgrind, not time.

The machine the bench runs on is shared and loaded, so per-task times move by 2x between runs. This
script is the workload to count instructions of instead: load + run of a linear flow of N no-op tasks
on a SQLite file (after a 20-task warm-up, with the schema already there). Run it twice, with N=0 and
N=1000; the difference is the cost of the 1,000 tasks::

    for n in 0 1000; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \
        .venv/bin/python bench/callgrind_persistence.py $n 2>&1 | grep Collected; done

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

``--floor`` counts the two-commit floor instead (``limit_persistence.py``'s statements: two autocommit
single-row UPDATEs per task on the bare ``sqlite3`` driver, WAL, ``synchronous=NORMAL``; its rows
inserted first, as there): 64-66M per 1,000 tasks. For reference, the same flows on the in-memory
engine (no backend) count about 114M per 1,000 tasks, the flows' construction included.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowkit_core import Noop

from flowkit import LinearFlow, engines
from flowkit.persistence import backends


def floor(n: int) -> None:
    """The floor's workload (see limit_persistence.py), after the same 20-task warm-up."""
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE atoms (id INTEGER PRIMARY KEY, state TEXT NOT NULL, result TEXT)")
        cur = conn.cursor()
        update = "UPDATE atoms SET state = ?, result = ? WHERE id = ?"
        for k in (20, n):
            cur.execute("DELETE FROM atoms")
            cur.executemany("INSERT INTO atoms (id, state) VALUES (?, 'PENDING')", [(i,) for i in range(k)])
            for i in range(k):
                cur.execute(update, ("RUNNING", None, i))
                cur.execute(update, ("SUCCESS", "null", i))
        conn.close()


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = backends.fetch(f"sqlite:///{tmp}/callgrind.db")
        with backend.get_connection() as conn:
            conn.upgrade()

        def once(k: int) -> None:
            engines.load(
                LinearFlow("linear").add(*(Noop(name=f"t{i}") for i in range(k))), backend=backend
            ).run()

        once(20)
        if n:
            once(n)
        backend.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--floor"]
    (floor if "--floor" in sys.argv[1:] else main)(int(args[0]) if args else 1000)
