"""Not a suite: N flows parked on a durable Sleep under one conductor: threads held, and wake-up lateness.

    .venv/bin/python bench/parked_waits.py [--flows 10000] [--spread 60] [--max-jobs 4] [--workdir DIR]

Each flow is ``Sleep(until=T_i)`` then a no-op task, posted as a job to a SQLite board with SQLite
persistence. One in-process conductor (``--max-jobs`` job threads) runs them: each parks at its Sleep.
Wake-up times are spread evenly over ``--spread`` seconds, the first ``--lead`` seconds after the first
post (default 0.05 s per flow, at least 20 s: time to post and park every flow before the first is due,
measured here at about 10 ms per post and 20 ms per park). Printed, never asserted:

- parked: how many jobs were WAITING at once, the process's threads then, and the conductor's
  running jobs (0: a parked flow holds no conductor thread);
- lateness: the Sleep atom's saved finish time minus its saved deadline, median / p99 / max, over the
  flows that were parked (the target is under 1 s). ``--park-only`` stops once every flow is parked.

Measured (2-core machine shared with other work, SQLite files on its disk, ``--max-jobs 4``):

- 1,000 flows over 20 s (50 wake-ups/s): posted in 2.0 s, all parked 13.6 s later; 4 threads in the
  process while 1,000 were parked (3 before the conductor started: its claim loop is the 4th), 0 jobs
  running; lateness median 0.017 s, p99 1.89 s, max 2.28 s (past the target: 50/s is close to what one
  conductor resumes per second here, about 70, so a stall of the machine queues the wake-ups).
- 1,000 flows over 40 s (25 wake-ups/s): median 0.030 s, p99 0.99 s, max 1.27 s (the tail is one stall
  of about 1 s, 35 s into the run, that every flow due then waited out).
- ``--park-only``, 4,000 flows: posted in 12.0 s, all parked 53.5 s later (13 ms a park); 4 threads
  while 4,000 were parked, 0 jobs running.
- 10,000 flows over 400 s (25 wake-ups/s; 2026-11-28, while the full test suite ran beside it): posted
  in 10.4 s, all 10,000 WAITING at once 85.8 s later; 6 threads in the process while they were parked
  (4 before the conductor: its claim loop and heartbeat are the other 2, whatever the number parked),
  0 jobs running; all 10,000 consumed; lateness median 0.016 s, p99 0.082 s, max 0.282 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from conductor import Conductor  # noqa: E402
from flowkit import LinearFlow, Sleep, Task  # noqa: E402
from flowkit.flow import Flow  # noqa: E402
from flowkit.jobboard import JobState  # noqa: E402
from flowkit.jobboard import backends as boards  # noqa: E402
from flowkit.persistence.shared import ensure_schema  # noqa: E402


class Done(Task):
    def execute(self) -> None:
        return None


def sleeper(until: str) -> Flow:
    """Sleep until the ISO time ``until``, then a no-op."""
    return LinearFlow("sleeper").add(Sleep("nap", until=datetime.fromisoformat(until)), Done("done"))


def _count_waiting(board: Any) -> int:
    import sqlalchemy as sa

    from flowkit.jobboard.backends._sql_schema import jobs

    with board.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(jobs.c.board == board.name, jobs.c.state == JobState.WAITING)
        return int(conn.execute(query).scalar_one())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flows", type=int, default=10_000)
    p.add_argument("--spread", type=float, default=60.0, help="seconds the wake-up times are spread over")
    p.add_argument("--lead", type=float, default=None, help="seconds from the last post to the first wake")
    p.add_argument("--max-jobs", type=int, default=4)
    p.add_argument("--workdir", default=None)
    p.add_argument(
        "--park-only",
        action="store_true",
        help="stop once every flow is parked (wake-ups an hour away): the thread figure alone, sooner",
    )
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="flowkit-parked-"))
    work.mkdir(parents=True, exist_ok=True)
    persistence = ensure_schema(f"sqlite:///{work}/flows.db")
    board = boards.fetch("parked", f"sqlite:///{work}/board.db", persistence=persistence)
    board.connect()
    threads_before = threading.active_count()
    t0 = time.time()
    lead = a.lead if a.lead is not None else max(20.0, a.flows * 0.05)
    if a.park_only:
        lead = 3600.0
    first_due = t0 + lead
    step = a.spread / max(1, a.flows - 1)
    for i in range(a.flows):
        due = datetime.fromtimestamp(first_due + i * step, UTC).isoformat()
        board.post_flow("bench.parked_waits:sleeper", factory_args=[due], name=f"sleeper-{i}")
    posted = time.time() - t0
    print(f"posted {a.flows} jobs in {posted:.1f}s; first due {lead:.0f}s after the start", file=sys.stderr)
    conductor = Conductor("bench", board, persistence, max_jobs=a.max_jobs, wait_timeout=0.5)
    thread = threading.Thread(target=conductor.run, daemon=True)
    thread.start()
    most_waiting, threads_at_most, running_at_most = 0, 0, -1
    while time.time() < first_due:
        waiting = _count_waiting(board)
        if waiting >= most_waiting:
            most_waiting, threads_at_most, running_at_most = (
                waiting,
                threading.active_count(),
                conductor.running_jobs,
            )
        if waiting == a.flows:
            break
        time.sleep(0.2)
    parked_all = time.time() - t0 - posted
    print(
        f"{most_waiting} jobs WAITING at once ({parked_all:.1f}s after posting); process threads then "
        f"{threads_at_most} (before the conductor: {threads_before}); "
        f"conductor running jobs: {running_at_most}",
        file=sys.stderr,
    )
    end = time.time() if a.park_only else first_due + a.spread + 120
    while time.time() < end and board.job_count() > 0:
        time.sleep(0.5)
    conductor.stop()
    thread.join(30)
    late = _lateness(persistence)
    board.close()
    result: dict[str, Any] = {
        "flows": a.flows,
        "spread_s": a.spread,
        "max_jobs": a.max_jobs,
        "post_s": round(posted, 1),
        "park_all_s": round(parked_all, 1),
        "waiting_at_once": most_waiting,
        "threads_while_parked": threads_at_most,
        "threads_before_conductor": threads_before,
        "conductor_running_jobs_while_parked": running_at_most,
        "parked": conductor.stats.parked,
        "consumed": conductor.stats.consumed,
        "lateness_s": late,
    }
    print(json.dumps(result, indent=1))
    return 0


def _lateness(persistence: Any) -> dict[str, float]:
    """Per flow: the nap's saved finish time minus its saved deadline (flows that ran to their end)."""
    with persistence.get_connection() as conn:
        books = conn.get_logbooks()
    late = []
    for book in books:
        for fd in book:
            nap = fd.find_by_name("nap")
            if nap is None or nap.finished_at is None or "wait" not in nap.meta:
                continue
            late.append(max(0.0, nap.finished_at.timestamp() - float(nap.meta["wait"]["deadline"])))
    if not late:
        return {}
    late.sort()
    return {
        "n": len(late),
        "median": round(statistics.median(late), 3),
        "p99": round(late[min(len(late) - 1, int(len(late) * 0.99))], 3),
        "max": round(late[-1], 3),
    }


if __name__ == "__main__":
    sys.exit(main())
