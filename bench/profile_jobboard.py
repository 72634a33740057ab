"""Not a suite: one conductor's cost per job, on the job board suite's workload (one-task jobs, PostgreSQL
persistence), on the ZooKeeper or the PostgreSQL board.

N jobs are posted first; then one :class:`conductor.loop.Conductor` (built as ``flowkit-conductor``
builds it) runs them in this process while everything is counted: process CPU time per job (all of
the conductor's threads: claim loop, job threads, the board's own), SQL statements, commits and
connection-pool pre-pings per job (SQLAlchemy events; a pre-ping is a round trip of its own),
ZooKeeper requests per job (kazoo's ``_call``), and with ``--profile`` each thread under cProfile,
merged, top functions by own and cumulative time. CPU per job is also split by thread: the claim loop,
the board client's threads (kazoo's connection thread reads every watch event), and the job threads.

```
.venv/bin/python bench/profile_jobboard.py --board sql --jobs 300
.venv/bin/python bench/profile_jobboard.py --board zookeeper --jobs 300 --profile
```
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import logging
import pstats
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness_jobboard import SESSION_TIMEOUT, TICK, ZK_HOSTS, proc_cpu
from _harness_persistence import drop_postgres, postgres_url


class Counts:
    """Round trips seen by this process, by kind."""

    def __init__(self) -> None:
        self.by_kind: collections.Counter[str] = collections.Counter()
        self.statements: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def add(self, kind: str, text: str | None = None) -> None:
        with self._lock:
            self.by_kind[kind] += 1
            if text is not None:
                self.statements[" ".join(text.split())[:90]] += 1

    def snapshot(self) -> tuple[collections.Counter[str], collections.Counter[str]]:
        with self._lock:
            return collections.Counter(self.by_kind), collections.Counter(self.statements)


def instrument(counts: Counts) -> None:
    """Count every SQL statement, commit, rollback, pre-ping and ZooKeeper request in this process."""
    import sqlalchemy as sa
    from sqlalchemy import event

    def statement(conn: Any, cursor: Any, text: str, *args: Any) -> None:
        counts.add("sql", text)

    event.listen(sa.engine.Engine, "before_cursor_execute", statement)
    event.listen(sa.engine.Engine, "commit", lambda conn: counts.add("commit"))
    event.listen(sa.engine.Engine, "rollback", lambda conn: counts.add("rollback"))
    from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2

    ping = PGDialect_psycopg2.do_ping

    def do_ping(self: Any, dbapi_connection: Any) -> bool:
        counts.add("pre_ping")
        return bool(ping(self, dbapi_connection))

    PGDialect_psycopg2.do_ping = do_ping  # type: ignore[method-assign]
    try:
        from kazoo.client import KazooClient
    except ImportError:
        return
    call = KazooClient._call

    def _call(self: Any, request: Any, async_object: Any) -> Any:
        counts.add("zk", f"zk {type(request).__name__}")
        return call(self, request, async_object)

    KazooClient._call = _call  # type: ignore[method-assign]


class ServerCpu:
    """CPU used by the PostgreSQL backends serving ``dbname`` (plus the WAL writer) and by the ZooKeeper
    server: both shared with other users of the machine, so the ZooKeeper figure is an upper bound."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname

    def _pids(self) -> tuple[list[int], list[int]]:
        import subprocess

        out = subprocess.run(
            ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        pg = [int(line.split()[0]) for line in out if f" {self.dbname} " in line or "walwriter" in line]
        zk = [int(line.split()[0]) for line in out if "zookeeper" in line and "java" in line]
        return pg, zk

    def snapshot(self) -> dict[str, dict[int, float]]:
        pg, zk = self._pids()
        return {"pg": {p: proc_cpu(p) for p in pg}, "zk": {p: proc_cpu(p) for p in zk}}

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {k: sum(cpu - before[k].get(pid, 0.0) for pid, cpu in after[k].items()) for k in after}


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each live thread of this process, by name (``/proc/self/task``)."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        out[thread.name] = out.get(thread.name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def by_thread(before: dict[str, float], after: dict[str, float], cpu: float, n: int) -> str:
    """Per job, the CPU of each thread that lived through the run (the claim loop, the board client's
    connection and callback threads...), and the rest: the job threads, which end with their job."""
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    used["job threads (the rest)"] = cpu - sum(used.values())
    ranked = sorted(used.items(), key=lambda item: -item[1])
    lines = [f"    {name[:48]:48} {t / n * 1e3:6.3f}" for name, t in ranked]
    return "CPU ms per job by thread:\n" + "\n".join(lines)


class ThreadProfiles:
    """cProfile in every thread started from now on (and the caller's), merged at the end."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._run = threading.Thread.run

    def install(self) -> None:
        run, profiles = self._run, self.profiles

        def profiled(thread: threading.Thread) -> None:
            prof = cProfile.Profile(time.thread_time)  # CPU time: waits cost nothing
            profiles.append(prof)
            prof.enable()
            try:
                run(thread)
            finally:
                prof.disable()

        threading.Thread.run = profiled  # type: ignore[method-assign]

    def report(self, top: int) -> str:
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for prof in self.profiles[1:]:
            stats.add(prof)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        return by_package(stats) + out.getvalue()


def by_package(stats: pstats.Stats) -> str:
    """Own CPU time summed by where the code lives (flowkit's packages one by one, each library, C
    built-ins): which layer a job's CPU goes to, before the function lists."""
    totals: collections.Counter[str] = collections.Counter()
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        if filename == "~":
            where = "builtins: " + (name.split(" of ")[-1].strip("'<>") if " of " in name else "functions")
        elif "/site-packages/" in filename:
            where = filename.split("/site-packages/")[1].split("/")[0]
        elif "/flowkit/" in filename and "/bench/" not in filename:
            parts = filename.split("/flowkit/")[-1].split("/")
            where = "flowkit/" + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
        elif "/conductor/" in filename:
            where = "conductor"
        elif "/lib/python3" in filename:
            where = "stdlib: " + filename.split("/")[-1].removesuffix(".py")
        else:
            where = filename.split("/")[-1]
        totals[where] += own
    total = sum(totals.values()) or 1.0
    lines = [f"own CPU time by package ({total:.2f} s in all):"]
    lines += [f"  {t:7.3f} s {t / total:6.1%}  {where}" for where, t in totals.most_common(25)]
    return "\n".join(lines) + "\n\n"


def post(board_url: str, persistence: str, n: int, trace_dir: str) -> None:
    from flowkit.jobboard import backends

    board = backends.fetch("bench", board_url, persistence=persistence)
    board.connect()
    try:
        for i in range(n):
            board.post_flow(
                "flowkit_jobboard:one_step",
                store={"key": f"j{i}", "trace_dir": trace_dir, "delay": 0.0},
                name=f"j{i}",
            )
    finally:
        board.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", choices=("sql", "zookeeper"), default="sql")
    p.add_argument("--jobs", type=int, default=300)
    p.add_argument(
        "--profile", action="store_true", help="cProfile every thread (slower; CPU is then inflated)"
    )
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--statements", action="store_true", help="list SQL statements by count")
    p.add_argument("--no-count", action="store_true", help="no event hooks (CPU without their cost)")
    a = p.parse_args()

    logging.basicConfig(level=logging.WARNING)
    token = secrets.token_hex(4)
    dbname = f"bench_profile_jobboard_{token}"
    persistence = postgres_url(dbname)
    zk_path = f"/flowkit-bench/profile-{token}"
    if a.board == "sql":
        board_url = f"{persistence}?lease={SESSION_TIMEOUT:g}"
    else:
        board_url = f"zookeeper://{ZK_HOSTS}{zk_path}?timeout={SESSION_TIMEOUT:g}"
    trace = Path("/tmp") / f"profile_jobboard_{token}"
    trace.mkdir()
    try:
        post(board_url, persistence, a.jobs, str(trace))
        from conductor.loop import Conductor
        from flowkit.jobboard import backends
        from flowkit.persistence import backends as persistence_backends

        counts = Counts()
        if not a.no_count:
            instrument(counts)
        board = backends.fetch("bench", board_url, persistence=persistence)
        store = persistence_backends.fetch(persistence)
        profiles = ThreadProfiles()
        if a.profile:  # before connecting: the board client's own threads (kazoo's connection thread)
            profiles.install()
        board.connect()
        conductor = Conductor("prof", board, store, allow=["flowkit_jobboard"])
        thread = threading.Thread(target=conductor.run, name="conductor", daemon=True)
        servers = ServerCpu(dbname)
        k0, s0 = counts.snapshot()
        server0 = servers.snapshot()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        thread.start()
        threads0 = thread_cpu()
        while conductor.stats.consumed < a.jobs:
            time.sleep(0.005)
            if not thread.is_alive():
                raise RuntimeError(f"conductor stopped: {conductor.stats}")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        threads = by_thread(threads0, thread_cpu(), cpu, a.jobs)
        k1, s1 = counts.snapshot()
        server = ServerCpu.used(server0, servers.snapshot())
        conductor.stop()
        thread.join(15)
        board.close()
        n = a.jobs
        print(f"board={a.board} jobs={n} wall={wall:.2f}s ({n / wall:.0f} jobs/s) cpu={cpu:.2f}s")
        print(f"CPU ms per job: {cpu / n * 1e3:.2f}")
        print(threads)
        print(
            f"server CPU ms per job: PostgreSQL backends + WAL writer {server['pg'] / n * 1e3:.2f}, "
            f"ZooKeeper server (shared: an upper bound) {server['zk'] / n * 1e3:.2f}"
        )
        for kind in sorted(set(k1) | set(k0)):
            print(f"  {kind:>9} per job: {(k1[kind] - k0[kind]) / n:.2f}")
        if a.statements:
            for text, count in (s1 - s0).most_common(40):
                print(f"  {count / n:6.2f}  {text}")
        if a.profile:
            print(profiles.report(a.top))
    finally:
        drop_postgres(dbname)
        for f in trace.iterdir():
            f.unlink()
        trace.rmdir()
        if a.board == "zookeeper":
            from kazoo.client import KazooClient

            zk = KazooClient(hosts=ZK_HOSTS)
            zk.start()
            zk.delete(zk_path, recursive=True)
            zk.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
