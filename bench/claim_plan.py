"""Not a suite: what one claim on the PostgreSQL board reads and costs the server, by backlog.

A board in a new database gets ``--waiting`` jobs posted (UNCLAIMED), ``--parked`` jobs parked an
hour ahead (WAITING, not due) and ``--claimed`` jobs running (CLAIMED, their leases live); then the
board's claim statement, as the board sends it (a named server-side statement,
``_sql_prepared.Prepared``), is explained with ``EXPLAIN (ANALYZE, FORMAT JSON)`` under each plan
PostgreSQL may run it with: ``generic`` (the plan a prepared statement keeps after its fifth run, made
without the parameters' values: the board's states and times are parameters) and ``custom`` (planned
for the values at hand). Each explain runs in a transaction that is rolled back: nothing is claimed.
Printed per plan: the server's execution time (median of ``--repeat``) and the rows the scans of the
jobs table read (returned, or passed over by their filter): their sum, and the largest.

Measured (2026-11-30, 300 waiting): nothing else, 4 rows and 0.10 ms; 5,000 parked, 4 rows and 0.11 ms
(5,004 rows and 0.72-0.85 ms before revision 0009); 1,000 claimed, 1,004 rows and 0.22-0.28 ms (the search
for an expired lease reads the live ones: see docs/jobboards.md).

    .venv/bin/python bench/claim_plan.py --waiting 300 --parked 5000 --claimed 0 --repeat 9
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from _harness import emit
from _harness_persistence import drop_postgres, postgres_url

from flowkit.jobboard.backends import _sql_claims as claims
from flowkit.jobboard.backends._sql_prepared import Prepared
from flowkit.jobboard.backends.sql import SQLJobBoard
from flowkit.states import JobState

VARIABLE = ("who", "token", "now", "lease_expires")


def scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an explained plan that reads the jobs table."""
    if node.get("Relation Name") == "flowkit_jobs":
        yield node
    for child in node.get("Plans", []):
        yield from scans(child)


def explain(engine: sa.Engine, board: str, plan: str, repeat: int) -> dict[str, Any]:
    """The claim statement explained ``repeat`` times under ``plan`` (generic or custom)."""
    prepared = Prepared(claims.claim_next_statement(board, "postgresql"), VARIABLE)
    times: list[float] = []
    rows: list[int] = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SET plan_cache_mode = force_{plan}_plan")
        cur.execute(prepared.prepare.replace("%%", "%").removesuffix("; "))
        for _ in range(repeat):
            params = prepared.params(claims.claim_params("bench", "token", time.time(), 10.0))
            marks = ", ".join(["%s"] * len(params))
            cur.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {prepared.name}({marks})", params)
            [[out]] = cur.fetchall()
            raw.rollback()
            times.append(out[0]["Execution Time"])
            rows = [  # a row read: one returned, or one its filter passed over
                int((n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"])
                for n in scans(out[0]["Plan"])
            ]
    finally:
        raw.close()
    return {
        "execution_ms": round(statistics.median(times), 3),
        "rows_read": sum(rows),
        "largest_scan": max(rows),
    }


def fill(board: SQLJobBoard, name: str, waiting: int, parked: int, claimed: int) -> None:
    """``waiting`` jobs posted, ``parked`` more parked an hour ahead and ``claimed`` more held by live
    claims (a lease a minute ahead: running jobs); rows written directly (a real park needs a claim
    first, and only the rows matter here)."""
    for i in range(waiting):
        board.post(f"w{i}", priority=i % 3)
    engine = board.engine
    assert engine is not None
    now = time.time()
    rows = [
        {
            "board": name,
            "uuid": str(uuid.uuid4()),
            "name": f"{kind}{i}",
            "state": (JobState.WAITING if kind == "p" else JobState.CLAIMED).value,
            "priority": i % 3,
            "owner": None if kind == "p" else "conductor",
            "lease_expires": None if kind == "p" else now + 60,
            "attempts": 1,
            "created_on": now,
            "updated_on": now,
            "record": "{}",
            "wake_at": now + 3600 if kind == "p" else None,
        }
        for kind, count in (("p", parked), ("c", claimed))
        for i in range(count)
    ]
    with engine.begin() as conn:
        if rows:
            conn.execute(claims.T.insert(), rows)
        conn.exec_driver_sql("ANALYZE flowkit_jobs")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--waiting", type=int, default=300, help="UNCLAIMED jobs")
    p.add_argument("--parked", type=int, default=5000, help="WAITING jobs, due in an hour")
    p.add_argument("--claimed", type=int, default=0, help="CLAIMED jobs, their leases a minute ahead")
    p.add_argument("--repeat", type=int, default=9, help="explains per plan (median)")
    args = p.parse_args(argv)
    dbname = "flowkit_claim_plan"
    board = SQLJobBoard("plan", postgres_url(dbname))
    board.connect()
    try:
        fill(board, "plan", args.waiting, args.parked, args.claimed)
        assert board.engine is not None
        result = {plan: explain(board.engine, "plan", plan, args.repeat) for plan in ("generic", "custom")}
    finally:
        board.close()
        drop_postgres(dbname)
    emit({"waiting": args.waiting, "parked": args.parked, "claimed": args.claimed, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
