"""The limit beside the persistence suite: two commits per task through the bare DB-API driver.

Why this floor: a durable task needs its RUNNING and its SUCCESS saved, each before the engine acts on
it, so at least two commits per task. Here each commit is one single-row ``UPDATE`` on a prepared
statement of the driver itself (``sqlite3`` in WAL mode, ``psycopg2`` on loopback), with the same
durability settings as flowkit's cases: ``sqlite`` at ``synchronous=NORMAL`` (flowkit's default
durability='flow' commits atom transitions without an fsync), ``sqlite_atom`` at ``synchronous=FULL``
(an fsync per commit), ``postgresql`` with ``synchronous_commit=off`` (flowkit's durability='flow' commits
atom transitions so; the flow's own commits flush) and ``postgresql_atom`` with the server's default
(``on``: a WAL flush per commit). No engine, no SQLAlchemy, nothing else.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _harness import emit, guarded, median_of
from _harness_persistence import drop_postgres, postgres_url, sqlite_url

CASES = ("sqlite", "postgresql", "sqlite_atom", "postgresql_atom")
SCHEMA = "CREATE TABLE atoms (id INTEGER PRIMARY KEY, state TEXT NOT NULL, result TEXT)"


def open_floor(case: str, name: str) -> tuple[Any, str, Callable[[], None]]:
    """A connection for ``case``'s floor to a new database (file) ``name`` with its table and one untimed
    run in it: (connection, the driver's parameter mark, close, which drops a PostgreSQL database)."""
    conn, mark, close = (_sqlite if case.startswith("sqlite") else _postgres)(case, name)
    try:
        conn.cursor().execute(SCHEMA)
        floor_once(conn, mark, 200)  # untimed: a new file's first writes are not a per-task cost
    except BaseException:
        close()
        raise
    return conn, mark, close


def _sqlite(case: str, name: str) -> tuple[Any, str, Callable[[], None]]:
    path = sqlite_url(name).removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if case.endswith('_atom') else 'NORMAL'}")
    return conn, "?", conn.close


def _postgres(case: str, dbname: str) -> tuple[Any, str, Callable[[], None]]:
    import psycopg2

    url = postgres_url(dbname).removeprefix("postgresql+psycopg2://")
    role, _, rest = url.partition("@")
    host_port, _, db = rest.partition("/")
    host, _, port = host_port.partition(":")
    conn = psycopg2.connect(host=host, port=int(port), user=role, dbname=db)
    conn.autocommit = True
    if not case.endswith("_atom"):
        conn.cursor().execute("SET synchronous_commit TO off")

    def close() -> None:
        conn.close()
        drop_postgres(dbname)

    return conn, "%s", close


def floor_once(conn: Any, mark: str, n: int) -> dict[str, float]:
    """One timed run of the floor: ``n`` tasks, two autocommit single-row updates each."""
    cur = conn.cursor()
    cur.execute("DELETE FROM atoms")
    cur.executemany(f"INSERT INTO atoms (id, state) VALUES ({mark}, 'PENDING')", [(i,) for i in range(n)])
    update = f"UPDATE atoms SET state = {mark}, result = {mark} WHERE id = {mark}"
    start = time.perf_counter()
    for i in range(n):  # autocommit: each statement is its own committed transaction
        cur.execute(update, ("RUNNING", None, i))
        cur.execute(update, ("SUCCESS", "null", i))
    return {"total_s": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="two commits per task, bare DB-API")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver")
    a = p.parse_args(argv)
    results: dict[str, Any] = {}
    for case in (c for c in a.cases.split(",") if c):
        conn, mark, close = open_floor(case, f"limit_{case}")
        try:
            results[case] = {
                str(n): guarded(
                    f"floor {case} n={n}",
                    lambda n=n, c=conn, m=mark: median_of(n, a.repeat, lambda: floor_once(c, m, n)),
                )
                for n in (int(x) for x in a.sizes.split(",") if x)
            }
        finally:
            close()
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
