"""Where the fault scripts (``faults_soak.py``, ``faults_freeze.py``) run: a fresh board and database.

``zookeeper``: a fresh path on the ZooKeeper at ``FLOWKIT_BENCH_ZK`` (session timeout ``timeout``),
flows in a fresh PostgreSQL database. ``sql``: the board and the flows in one fresh PostgreSQL
database (lease ``timeout``). Everything is removed at the end; the conductors' logs and the event log
stay under ``.bench/faults/`` when the run found a fault (or failed), for reading.

The scripts run from the repo's ``.venv``; the conductors and the counting live in ``tests/``
(``tests.fault_fleet``, ``tests.fault_ledger``, ``tests.fault_soak``), which the suite's soak uses too:
importing this module puts the repo root on ``sys.path`` for them.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from _harness_jobboard import ZK_HOSTS
from _harness_persistence import drop_postgres, postgres_url

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK_DIR = REPO / ".bench" / "faults"
BOARDS = ("zookeeper", "sql")
DEFAULT_TIMEOUT = {"zookeeper": 4.0, "sql": 3.0}
"""ZooKeeper session timeout / SQL lease, seconds (4 s is ZooKeeper's usual minimum)."""

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def run_script(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status: 130 on Ctrl-C (its cleanup has run), 2 when the run itself
    failed (a traceback, not a fault count)."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: conductors killed, database dropped", file=sys.stderr)
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(2)


def sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so ``finally`` blocks kill the conductors and drop the database."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


class Setting:
    """A fresh board of kind ``board`` and its database, connected, for one run (a context manager)."""

    def __init__(
        self, board: str, label: str, timeout: float | None = None, max_attempts: int | None = None
    ) -> None:
        if board not in BOARDS:
            raise ValueError(f"unknown board {board!r}: choose from {', '.join(BOARDS)}")
        self.kind = board
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT[board]
        self.max_attempts = max_attempts
        token = secrets.token_hex(4)
        self.dbname = f"bench_faults_{board}_{token}"
        self.zk_path = f"/flowkit-bench/faults-{label}-{token}"
        self.work = WORK_DIR / f"{label}-{board}-{token}"
        self.keep = False
        """Set to keep the work directory (logs, event log) after the run."""

    def __enter__(self) -> Setting:
        from flowkit.jobboard import backends

        self.work.mkdir(parents=True, exist_ok=True)
        self.persistence = postgres_url(self.dbname)
        if self.kind == "zookeeper":
            self.board_url = f"zookeeper://{ZK_HOSTS}{self.zk_path}?timeout={self.timeout:g}"
        else:
            self.board_url = f"{self.persistence}?lease={self.timeout:g}"
        if self.max_attempts is not None:
            self.board_url += f"&max_attempts={self.max_attempts}"
        self.board: Any = backends.fetch("flowkit", self.board_url, persistence=self.persistence)
        try:
            self.board.connect()
        except BaseException:
            drop_postgres(self.dbname)
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.board.close()
        if self.kind == "zookeeper":
            _delete_zk_path(self.zk_path)
        drop_postgres(self.dbname)
        if exc_type is None and not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def _delete_zk_path(path: str) -> None:
    from kazoo.client import KazooClient

    client = KazooClient(hosts=ZK_HOSTS, timeout=4)
    client.start(timeout=10)
    try:
        client.delete(path, recursive=True)
    except Exception:  # already gone, or never made
        pass
    finally:
        client.stop()
        client.close()
