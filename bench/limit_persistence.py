"""The limit beside the persistence suite: two commits per task through the bare DB-API driver, and the
run's end made durable.

Why this floor: a durable task needs its RUNNING and its SUCCESS saved, each before the engine acts on
it, so at least two commits per task. Here each commit is one single-row ``UPDATE`` on a prepared
statement of the driver itself (``sqlite3`` in WAL mode, ``psycopg2`` on loopback), with the same
durability settings as flowkit's cases: ``sqlite`` at ``synchronous=NORMAL`` (flowkit's default
durability='flow' commits atom transitions without an fsync), ``sqlite_atom`` at ``synchronous=FULL``
(an fsync per commit), ``postgresql`` with ``synchronous_commit=off`` (flowkit's durability='flow' commits
atom transitions so; the flow's own commits flush) and ``postgresql_atom`` with the server's default
(``on``: a WAL flush per commit). No engine, no SQLAlchemy, nothing else.

The run's end (the ``sqlite`` and ``postgresql`` cases): durability='flow' promises that everything is
on disk when ``run()`` returns, and commits without a flush promise nothing of the kind, so the floor's
run ends with the one flush that promise costs, as flowkit's does: on SQLite an ``fdatasync`` of the WAL
file (flowkit's own ``_sql_durability.sync_file``, what its durable point does there), on PostgreSQL one
commit with ``synchronous_commit`` on (flowkit's ``DURABLE_COMMIT`` in front of one statement: it waits
for the WAL flush of every commit before it). It is timed
apart (``end_s``), so a report can show the ratio to the commits alone as well. The ``_atom`` cases
have nothing to add: each of their commits is flushed.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from _harness import emit, guarded, median_of
from _harness_persistence import drop_postgres, postgres_url, sqlite_url

from flowkit.persistence.backends._sql_durability import DURABLE_COMMIT, sync_file

CASES = ("sqlite", "postgresql", "sqlite_atom", "postgresql_atom")
SCHEMA = "CREATE TABLE atoms (id INTEGER PRIMARY KEY, state TEXT NOT NULL, result TEXT)"


@dataclass(frozen=True)
class Floor:
    """An open floor: its connection, the driver's parameter mark, the run's end (None: nothing to
    add, every commit flushed) and close (which drops a PostgreSQL database)."""

    conn: Any
    mark: str
    end: Callable[[Any, int], None] | None
    close: Callable[[], None]


def open_floor(case: str, name: str) -> Floor:
    """``case``'s floor in a new database (file) ``name``, with its table and one untimed run in it."""
    floor = (_sqlite if case.startswith("sqlite") else _postgres)(case, name)
    try:
        floor.conn.cursor().execute(SCHEMA)
        floor_once(floor, 200)  # untimed: a new file's first writes are not a per-task cost
    except BaseException:
        floor.close()
        raise
    return floor


def _sqlite(case: str, name: str) -> Floor:
    path = sqlite_url(name).removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    atom = case.endswith("_atom")
    conn.execute(f"PRAGMA synchronous={'FULL' if atom else 'NORMAL'}")

    def end(cursor: Any, n: int) -> None:  # the WAL file flushed, every commit's frames with it
        sync_file(f"{path}-wal", path)

    return Floor(conn, "?", None if atom else end, conn.close)


def _postgres(case: str, dbname: str) -> Floor:
    import psycopg2

    url = postgres_url(dbname).removeprefix("postgresql+psycopg2://")
    role, _, rest = url.partition("@")
    host_port, _, db = rest.partition("/")
    host, _, port = host_port.partition(":")
    conn = psycopg2.connect(host=host, port=int(port), user=role, dbname=db)
    conn.autocommit = True
    atom = case.endswith("_atom")
    if not atom:
        conn.cursor().execute("SET synchronous_commit TO off")

    def end(cursor: Any, n: int) -> None:  # one message, one transaction: its commit waits for the flush
        cursor.execute(f"{DURABLE_COMMIT}; UPDATE atoms SET state = %s WHERE id = %s", ("SUCCESS", n - 1))

    def close() -> None:
        conn.close()
        drop_postgres(dbname)

    return Floor(conn, "%s", None if atom else end, close)


def floor_once(floor: Floor, n: int) -> dict[str, float]:
    """One timed run of the floor: ``n`` tasks, two autocommit single-row updates each, then the run's
    end (``end_s``, part of ``total_s``)."""
    cur = floor.conn.cursor()
    cur.execute("DELETE FROM atoms")
    mark = floor.mark
    cur.executemany(f"INSERT INTO atoms (id, state) VALUES ({mark}, 'PENDING')", [(i,) for i in range(n)])
    update = f"UPDATE atoms SET state = {mark}, result = {mark} WHERE id = {mark}"
    start = time.perf_counter()
    for i in range(n):  # autocommit: each statement is its own committed transaction
        cur.execute(update, ("RUNNING", None, i))
        cur.execute(update, ("SUCCESS", "null", i))
    commits = time.perf_counter()
    if floor.end is not None:
        floor.end(cur, n)
    done = time.perf_counter()
    return {"total_s": done - start, "end_s": done - commits}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="two commits per task, bare DB-API")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver")
    a = p.parse_args(argv)
    results: dict[str, Any] = {}
    for case in (c for c in a.cases.split(",") if c):
        floor = open_floor(case, f"limit_{case}")
        try:
            results[case] = {
                str(n): guarded(
                    f"floor {case} n={n}",
                    lambda n=n, f=floor: median_of(n, a.repeat, lambda: floor_once(f, n)),
                )
                for n in (int(x) for x in a.sizes.split(",") if x)
            }
        finally:
            floor.close()
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
