"""Job board cases on flowkit: the ZooKeeper board and the PostgreSQL board with ``flowkit-conductor``
processes (see ``_harness_jobboard.py``). Also the module the conductors import the benchmark's flow
from (``flowkit_jobboard:one_step``). Prints one JSON object on stdout: the ZooKeeper board's cases
under their own names, the PostgreSQL board's prefixed ``sql_`` (``--boards zookeeper,sql``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from _harness import emit, log
from _harness_jobboard import BENCH_DIR, SESSION_TIMEOUT, ZK_HOSTS, parse_options, run_cases, trace_start

from flowkit import LinearFlow, Task


class Traced(Task):
    def execute(self, key: str, trace_dir: str, delay: float = 0.0) -> None:
        trace_start(trace_dir, key)
        if delay:
            import time

            time.sleep(delay)


def one_step() -> LinearFlow:
    return LinearFlow("bench-job").add(Traced(name="traced"))


def _url(zk_path: str) -> str:
    return f"zookeeper://{ZK_HOSTS}{zk_path}?timeout={SESSION_TIMEOUT:g}"


class FlowkitSide:
    name = "flowkit"
    ready_marker = "running jobs from"

    def __init__(self, max_jobs: int = 1) -> None:
        self.max_jobs = max_jobs

    def board_url(self, zk_path: str, persistence: str) -> str:
        return _url(zk_path)

    def conductor_command(self, zk_path: str, persistence: str, name: str) -> list[str]:
        code = f"import sys; sys.path[:0] = [{str(BENCH_DIR)!r}]; from conductor.cli import main; main()"
        return [
            sys.executable,
            "-c",
            code,
            "--board",
            self.board_url(zk_path, persistence),
            "--persistence",
            persistence,
            "--name",
            name,
            "--allow",
            "flowkit_jobboard",
            "--max-jobs",
            str(self.max_jobs),
        ]

    def open(self, zk_path: str, persistence: str) -> Any:
        from kazoo.client import KazooClient

        from flowkit.jobboard import backends

        board = backends.fetch("bench", _url(zk_path), persistence=persistence)
        board.connect()
        counter = KazooClient(hosts=ZK_HOSTS)
        counter.start()
        return board, counter, f"{zk_path}/jobs"

    def post(self, poster: Any, key: str, trace_dir: str, delay: float) -> None:
        board = poster[0]
        board.post_flow(
            "flowkit_jobboard:one_step", store={"key": key, "trace_dir": trace_dir, "delay": delay}, name=key
        )

    def remaining(self, poster: Any) -> int:
        _, counter, jobs = poster
        return sum(1 for c in counter.get_children(jobs) if not c.endswith(".lock"))

    def close(self, poster: Any) -> None:
        board, counter, jobs = poster
        board.close()
        counter.delete(jobs.rsplit("/", 1)[0], recursive=True)
        counter.stop()
        counter.close()


class SqlSide(FlowkitSide):
    """The board in the measurement's PostgreSQL database, beside persistence (lease = the ZooKeeper
    session timeout, so failover compares alike)."""

    name = "flowkit_sql"

    def board_url(self, zk_path: str, persistence: str) -> str:
        return f"{persistence}?lease={SESSION_TIMEOUT:g}"

    def open(self, zk_path: str, persistence: str) -> Any:
        from flowkit.jobboard import backends

        board = backends.fetch("flowkit", self.board_url(zk_path, persistence), persistence=persistence)
        board.connect()
        return board

    def post(self, poster: Any, key: str, trace_dir: str, delay: float) -> None:
        poster.post_flow(
            "flowkit_jobboard:one_step", store={"key": key, "trace_dir": trace_dir, "delay": delay}, name=key
        )

    def remaining(self, poster: Any) -> int:
        return int(poster.job_count())

    def close(self, poster: Any) -> None:
        poster.close()


def main(argv: Sequence[str] | None = None) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--max-jobs", type=int, default=1)
    mine, rest = own.parse_known_args(sys.argv[1:] if argv is None else argv)
    opts = parse_options(rest)
    k = max(1, mine.max_jobs)
    log(f"flowkit job board: {opts}, max jobs per conductor {k}")
    suffix = f"_jobs{k}" if k > 1 else ""
    results: dict[str, Any] = {}
    if "zookeeper" in opts.boards:
        results.update({f"{case}{suffix}": r for case, r in run_cases(FlowkitSide(k), opts).items()})
    if "sql" in opts.boards:
        results.update({f"sql_{case}{suffix}": r for case, r in run_cases(SqlSide(k), opts).items()})
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
