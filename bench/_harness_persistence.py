"""Timing harness of the persistence suite, shared by ``flowkit_persistence.py`` and ``peer_persistence.py``.

Both sides run the same workload on the same kinds of database: a linear flow of N no-op tasks, every
state change saved, on a SQLite file under ``.bench/persistence/`` and on a fresh PostgreSQL database
per side (they never share tables). Timed: ``engines.load(flow, backend=...)`` + ``run()`` with the
backend already open and its schema upgraded, as a long-running service would have it. Counted, with
SQLAlchemy event listeners on the side's own engine: SQL statements and commits (a statement on an
autocommit connection is its own transaction, so it counts as a commit too, unless it is between an
explicit BEGIN and COMMIT there, which count one). The listeners hear one
untimed run of each size, and are removed before the timed ones: a Python call on every statement
would be timed on the sides but not in the floor (``limit_persistence.py``), which has none.

Stdlib only at import: the peer side imports this in the TaskFlow venv. SQLAlchemy and psycopg2, which
both venvs have, are imported when used.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from _harness import SAMPLED_S, emit, guarded, log, median_of

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR.parent / ".bench" / "persistence"
PG_HOST = os.environ.get("FLOWKIT_BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FLOWKIT_BENCH_PG_PORT", "5432"))
PG_ROLES = ("postgres", "root")  # the local cluster trusts loopback; its superuser depends on the machine
CASES = ("sqlite", "postgresql")
FLOWKIT_ONLY_CASES = ("sqlite_atom", "postgresql_atom")
"""flowkit with ``durability="atom"`` (an fsync per atom transition), beside its default."""
WARMUP_N = 200
"""One untimed run per database first, on both sides: imports and first calls, and a brand-new file's
first writes (on a VM disk, fsyncs into freshly allocated blocks cost several times what they cost once
the file has settled), are not per-task costs of a database that a service keeps using."""


class Side(Protocol):
    """What a side script provides."""

    def open(self, url: str) -> Any: ...  # a backend with its schema upgraded
    def sa_engine(self, backend: Any) -> Any: ...  # its SQLAlchemy engine, for the counters
    def close(self, backend: Any) -> None: ...
    def linear(self, n: int) -> Any: ...
    def load(self, flow: Any, backend: Any) -> Any: ...  # engines.load(flow, backend=...), new logbook
    def done(self, engine: Any, n: int) -> bool: ...  # did the last task end in SUCCESS?


# -- databases ----------------------------------------------------------------------------------------


def sqlite_url(name: str) -> str:
    """A new, empty SQLite file under ``.bench/persistence/`` (the repo's disk, for both sides)."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / f"{name}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _admin() -> tuple[str, Any]:
    import psycopg2

    errors = []
    for role in PG_ROLES:
        try:
            conn = psycopg2.connect(
                host=PG_HOST, port=PG_PORT, user=role, dbname="postgres", connect_timeout=5
            )
        except psycopg2.OperationalError as exc:
            errors.append(f"{role}: {str(exc).strip()}")
            continue
        conn.autocommit = True
        return role, conn
    raise RuntimeError(f"cannot log in to PostgreSQL at {PG_HOST}:{PG_PORT}: {'; '.join(errors)}")


def _pg(sql: str) -> str:
    role, conn = _admin()
    with conn.cursor() as cur:
        for statement in sql.split(";"):
            cur.execute(statement)
    conn.close()
    return role


def postgres_url(dbname: str) -> str:
    """A freshly created database ``dbname`` (dropped first if it exists), as a psycopg2 URL."""
    role = _pg(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE); CREATE DATABASE "{dbname}"')
    return f"postgresql+psycopg2://{role}@{PG_HOST}:{PG_PORT}/{dbname}"


def drop_postgres(dbname: str) -> None:
    _pg(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# -- counting -----------------------------------------------------------------------------------------


class SqlCounter:
    """Statements and commits on one SQLAlchemy engine, from its event hooks."""

    def __init__(self, sa_engine: Any) -> None:
        self.statements = 0
        self.commits = 0
        self._engine = sa_engine
        self._open: set[int] = set()  # connections inside an explicit BEGIN ... COMMIT

    def __enter__(self) -> SqlCounter:
        from sqlalchemy import event

        event.listen(self._engine, "before_cursor_execute", self._statement)
        event.listen(self._engine, "commit", self._commit)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self._engine, "before_cursor_execute", self._statement)
        event.remove(self._engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements += 1
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            return
        # on an autocommit connection a statement is its own transaction, except between an explicit
        # BEGIN and its COMMIT (the SQLite recorder's durable points and paired writes): one commit then
        head = statement.lstrip()[:6].upper()
        if head.startswith("BEGIN"):
            self._open.add(id(conn))
        elif id(conn) in self._open:
            if head.startswith(("COMMIT", "ROLLBA")):
                self._open.discard(id(conn))
                self.commits += head.startswith("COMMIT")
        else:
            self.commits += 1

    def _commit(self, conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.commits += 1

    def snapshot(self) -> tuple[int, int]:
        return self.statements, self.commits


# -- the measurement ----------------------------------------------------------------------------------


def _once(side: Side, backend: Any, counter: SqlCounter, n: int, no_gc: bool) -> dict[str, float]:
    flow = side.linear(n)
    gc.collect()
    if no_gc:
        gc.disable()
    try:
        s0, c0 = counter.snapshot()
        start = time.perf_counter()
        engine = side.load(flow, backend)
        engine.compile()
        engine.prepare()  # creates the flow detail's rows; what follows is the run itself
        set_up = time.perf_counter() - start
        s1, c1 = counter.snapshot()
        engine.run()
        total = time.perf_counter() - start
        s2, c2 = counter.snapshot()
    finally:
        gc.enable()
    if not side.done(engine, n):
        raise AssertionError(f"t{n - 1} did not end in SUCCESS")
    transitions = 2 * n + 2  # RUNNING + SUCCESS per task, RUNNING + SUCCESS of the flow
    return {
        "total_s": total,
        "setup_s": set_up,  # load + compile + prepare: the fixed part of a run, which the floor has not
        "statements_per_task": (s2 - s0) / n,
        "commits_per_task": (c2 - c0) / n,
        "run_statements_per_transition": (s2 - s1) / transitions,
        "run_commits_per_transition": (c2 - c1) / transitions,
    }


_COUNTS = (
    "statements_per_task",
    "commits_per_task",
    "run_statements_per_transition",
    "run_commits_per_transition",
)


def _counted_then_timed(
    side: Side,
    backend: Any,
    counter: SqlCounter,
    n: int,
    repeat: int,
    no_gc: bool,
    floor: Callable[[int], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """One run of ``n`` with the counter listening (untimed), then the median of ``repeat`` timed runs
    with nothing listening, or of more while they add up to less than ``SAMPLED_S`` (the core suite's
    rule, the same for every side: a 100-task run on SQLite takes 4-8 ms, and three of them gave a
    median anywhere in that spread); the counts come from the first.

    ``floor``: a run of the two-commit floor (``limit_persistence.floor_once``, the run's durable end
    included), made beside each timed run. The speed of this machine's disk and CPU drifts by tens of
    percent over minutes, and the limit column is measured minutes after the sides; a floor timed beside
    each run is what the ratio to it is taken from (``floor_ratio``: the median run over the median
    floor, both of the same minutes; ``commits_floor_ratio``: over the floor's commits alone)."""
    with counter:
        counted = _once(side, backend, counter, n, no_gc)
    floors: list[dict[str, float]] = []

    def paired() -> dict[str, float]:
        if floor is None:
            return _once(side, backend, counter, n, no_gc)
        # in turn first and second (ABBA): a run after the other pays for the server's work that one
        # left behind (the WAL writer flushing its commits), so neither side always does
        if len(floors) % 2:
            floors.append(floor(n))
            return _once(side, backend, counter, n, no_gc)
        run = _once(side, backend, counter, n, no_gc)
        floors.append(floor(n))
        return run

    timed = median_of(n, repeat, paired, SAMPLED_S)
    timed.update((key, counted[key]) for key in _COUNTS)
    if floors:
        floor_s = statistics.median(f["total_s"] for f in floors)
        # the floor's commits alone, without the run's durable end (see limit_persistence): shown
        # beside, so the report says what that one flush weighs
        commits_s = statistics.median(f["total_s"] - f["end_s"] for f in floors)
        timed["floor_per_task_us"] = floor_s / n * 1e6
        timed["floor_ratio"] = timed["total_s"] / floor_s
        timed["floor_end_us"] = statistics.median(f["end_s"] for f in floors) * 1e6
        timed["commits_floor_ratio"] = timed["total_s"] / commits_s
    return timed


def measure_case(
    side: Side,
    case: str,
    url: str,
    sizes: Sequence[int],
    repeat: Callable[[int], int],
    no_gc: bool,
    floor_db: str | None = None,
) -> dict[str, Any]:
    """Every size of one database case; the backend is opened (and upgraded) once, untimed.
    ``floor_db``: also time the case's two-commit floor beside each run, in that database (file)."""
    backend = side.open(url)
    counter = SqlCounter(side.sa_engine(backend))
    row: dict[str, Any] = {}
    floor: Callable[[int], dict[str, float]] | None = None
    close_floor: Callable[[], None] | None = None
    if floor_db is not None:
        from limit_persistence import floor_once, open_floor

        opened = open_floor(case, floor_db)
        close_floor = opened.close
        floor = functools.partial(floor_once, opened)
    try:
        guarded(
            f"{case} warm-up",
            lambda: median_of(WARMUP_N, 1, lambda: _once(side, backend, counter, WARMUP_N, no_gc)),
        )
        for n in sizes:
            row[str(n)] = guarded(
                f"{case} n={n}",
                lambda n=n: _counted_then_timed(side, backend, counter, n, repeat(n), no_gc, floor),
            )
            found = row[str(n)]
            if found.get("total_s") is not None:
                log(
                    f"    {found['statements_per_task']:.2f} statements, {found['commits_per_task']:.2f} "
                    f"commits per task; {found['run_statements_per_transition']:.2f} per transition"
                )
    finally:
        side.close(backend)
        if close_floor is not None:
            close_floor()
    return row


def main(
    side: Side, label: str, db_prefix: str, argv: Sequence[str] | None, paired_floor: bool = False
) -> int:
    """The command line both side scripts share; prints one JSON object on stdout. ``paired_floor``:
    time the two-commit floor beside each timed run (see :func:`_counted_then_timed`)."""
    p = argparse.ArgumentParser(description=f"persistence cases on {label}")
    p.add_argument("--cases", default=",".join(CASES), help=f"also: {', '.join(FLOWKIT_ONLY_CASES)}")
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    p.add_argument(
        "--large-repeat", type=int, default=None, help="repeats for N >= 1000 (the peer's take a minute each)"
    )
    p.add_argument("--no-gc", action="store_true")
    a = p.parse_args(argv)
    cases = [c for c in a.cases.split(",") if c]
    sizes = [int(x) for x in a.sizes.split(",") if x]

    def repeat(n: int) -> int:
        return max(1, a.large_repeat if a.large_repeat is not None and n >= 1000 else a.repeat)

    log(f"{label}: persistence cases={cases} sizes={sizes} repeat={a.repeat}")
    results: dict[str, Any] = {}
    for case in cases:
        database, _, durability = case.partition("_")  # "sqlite_atom": flowkit with durability="atom"
        query = f"?durability={durability}" if durability else ""
        floor_db = f"{db_prefix}_floor_{case}" if paired_floor else None
        if database == "sqlite":
            url = sqlite_url(f"{db_prefix}_{case}") + query
            results[case] = measure_case(side, case, url, sizes, repeat, a.no_gc, floor_db)
        elif database == "postgresql":
            dbname = f"{db_prefix}_bench"
            try:
                url = postgres_url(dbname) + query
            except Exception as exc:
                results[case] = {
                    str(n): {"total_s": None, "per_task_us": None, "error": str(exc)[:300]} for n in sizes
                }
                continue
            try:
                results[case] = measure_case(side, case, url, sizes, repeat, a.no_gc, floor_db)
            finally:
                drop_postgres(dbname)
        else:
            raise SystemExit(f"unknown case {case!r}; known: {', '.join(CASES)}")
    emit(results)
    return 0
