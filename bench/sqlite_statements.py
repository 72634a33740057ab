"""Not a suite: a serial run's own SQL on SQLite, sent by a bare ``sqlite3`` loop, beside the floor.

Why: at N=100 flowkit on a SQLite file cost about 2.5x the two-commit floor, and the question was what
that gap is made of. This sends the statements a serial run sends for its atoms (per task ``BEGIN
IMMEDIATE``, the task's SUCCESS and the next task's RUNNING ``UPDATE``, ``COMMIT``: one commit per task,
as the recorder pairs them), on flowkit's own tables and rows (a flow detail set up by flowkit, not
run), with nothing around them; and times, in turn in the same process, the floor
(``limit_persistence.floor_once``) and flowkit's set-up and run of the same flow. Per task, medians::

    .venv/bin/python bench/sqlite_statements.py --n 100 --repeat 15

If the bare statements cost about the floor, the schema and the statements are not the gap.
``statements_and_flow`` adds the run's two flow transitions (the flow row's RUNNING, and its SUCCESS
followed by an ``fdatasync`` of the WAL, the one flush the floor's run ends with too; on SQLite the
flow's start is no durable point, see ``Backend.start_is_durable``): what is left between it and
flowkit's run is the engine's and the recorder's Python.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _harness import emit
from _harness_persistence import sqlite_url
from flowkit_persistence import FlowkitSide
from limit_persistence import floor_once, open_floor

from flowkit.persistence.backends._sql_durability import sync_file

RUNNING = "UPDATE flowkit_atomdetails SET state = ?, attempts = 1, started_at = ? WHERE uuid = ?"
SUCCESS = "UPDATE flowkit_atomdetails SET state = ?, seq = ?, finished_at = ? WHERE uuid = ?"
STAMP = "2026-11-29 17:25:43.343569"  # a timestamp as the recorder stores it in SQLite


FLOW = "UPDATE flowkit_flowdetails SET state = ?, updated_at = ? WHERE uuid = ?"


def statements_once(
    conn: sqlite3.Connection, uuids: Sequence[str], flow: tuple[str, str] | None = None
) -> float:
    """A serial run's atom statements on the rows ``uuids`` (PENDING, in order); seconds taken.
    ``flow`` (its uuid, the WAL file's path): also the run's two flow transitions, each its own
    transaction, the last one followed by a flush of the WAL, as the recorder makes them."""
    cur = conn.cursor()
    start = time.perf_counter()
    if flow is not None:
        cur.execute(FLOW, ("RUNNING", STAMP, flow[0]))
    cur.execute(RUNNING, ("RUNNING", STAMP, uuids[0]))
    for k, uuid in enumerate(uuids):
        cur.execute("BEGIN IMMEDIATE")
        cur.execute(SUCCESS, ("SUCCESS", k + 1, STAMP, uuid))
        if k + 1 < len(uuids):
            cur.execute(RUNNING, ("RUNNING", STAMP, uuids[k + 1]))
        cur.execute("COMMIT")
    if flow is not None:
        cur.execute(FLOW, ("SUCCESS", STAMP, flow[0]))
        sync_file(flow[1], flow[1])  # what a durable point adds on SQLite at durability='flow'
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n", type=int, default=100, help="tasks per run")
    p.add_argument("--repeat", type=int, default=15, help="median of this many runs of each")
    args = p.parse_args(argv)
    n = args.n
    side = FlowkitSide()
    url = sqlite_url("sqlite_statements")
    backend = side.open(url)
    bare = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
    bare.execute("PRAGMA synchronous=NORMAL")  # flowkit's atom commits (durability='flow')
    floor = open_floor("sqlite", "sqlite_statements_floor")
    wal = url.removeprefix("sqlite:///") + "-wal"
    times: dict[str, list[float]] = {
        "floor": [],
        "statements": [],
        "statements_and_flow": [],
        "flowkit_setup": [],
        "flowkit_run": [],
    }

    def flowkit() -> None:
        engine = side.load(side.linear(n), backend)
        gc.collect()
        start = time.perf_counter()
        engine.compile()
        engine.prepare()
        set_up = time.perf_counter()
        engine.run()
        times["flowkit_setup"].append(set_up - start)
        times["flowkit_run"].append(time.perf_counter() - set_up)

    def statements() -> None:
        for key, durable in (("statements", False), ("statements_and_flow", True)):
            engine = side.load(side.linear(n), backend)
            engine.prepare()  # a new flow detail's rows, PENDING; not run
            uuids = list(engine.storage.atom_uuids)
            flow = (engine.storage.flow_uuid, wal) if durable else None
            gc.collect()
            times[key].append(statements_once(bare, uuids, flow))

    def floor_run() -> None:
        times["floor"].append(floor_once(floor, n)["total_s"])

    turns: list[Callable[[], Any]] = [floor_run, statements, flowkit]
    try:
        for _ in range(3):  # untimed: first statements compiled, caches warm
            flowkit()
        for key in times:
            times[key].clear()
        for k in range(args.repeat):
            for turn in turns[k % 3 :] + turns[: k % 3]:  # each goes first, second and third in turn
                turn()
    finally:
        bare.close()
        floor.close()
        side.close(backend)
    per_task = {key: statistics.median(values) / n * 1e6 for key, values in times.items()}
    floor_us = per_task["floor"]
    emit(
        {
            "n": n,
            "repeat": args.repeat,
            "per_task_us": {key: round(value, 1) for key, value in per_task.items()},
            "over_floor": {key: round(value / floor_us, 2) for key, value in per_task.items()},
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
