"""Job board cases on TaskFlow 6.5.0: its ZooKeeper job board and blocking conductor (see
``_harness_jobboard.py``). Runs in ``.bench/taskflow-venv``. ``--conductor NAME`` runs one conductor
(what the harness starts as a process); otherwise it measures and prints one JSON object on stdout.
Posting is what TaskFlow users write by hand: logbook, flow detail, factory details, save, post."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from _harness import emit, log
from _harness_jobboard import SESSION_TIMEOUT, ZK_HOSTS, parse_options, run_cases, trace_start
from taskflow import engines, task
from taskflow.patterns import linear_flow
from taskflow.persistence import models


class Traced(task.Task):
    def execute(self, key: str, trace_dir: str, delay: float = 0.0) -> None:
        trace_start(trace_dir, key)
        if delay:
            time.sleep(delay)


def one_step() -> Any:
    return linear_flow.Flow("bench-job").add(Traced(name="traced"))


def _server_version_from_srvr() -> None:
    """TaskFlow's ZooKeeper board asks kazoo for the server version, which kazoo reads with the
    four-letter word ``envi``; the shared test server allows only ``ruok,srvr,stat``, so read the same
    version from ``srvr``. Nothing else about the peer changes."""
    import re

    from kazoo.client import KazooClient

    def server_version(self: Any, retries: int = 3) -> tuple[int, ...]:
        found = re.search(r"version: (\d+)\.(\d+)\.(\d+)", str(self.command(b"srvr")))
        if found is None:
            raise RuntimeError("ZooKeeper's srvr answer names no version")
        return tuple(int(x) for x in found.groups())

    KazooClient.server_version = server_version


_server_version_from_srvr()


def _persistence(url: str) -> Any:
    from taskflow.persistence import backends

    backend = backends.fetch({"connection": url})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def _board(zk_path: str, persistence: Any) -> Any:
    from taskflow.jobs import backends

    conf = {"board": "zookeeper", "hosts": ZK_HOSTS, "path": zk_path, "timeout": SESSION_TIMEOUT}
    board = backends.fetch("bench", conf, persistence=persistence)
    board.connect()
    return board


class TaskFlowSide:
    name = "taskflow"
    ready_marker = "READY"

    def conductor_command(self, zk_path: str, persistence: str, name: str) -> list[str]:
        return [
            sys.executable,
            __file__,
            "--conductor",
            name,
            "--zk-path",
            zk_path,
            "--persistence",
            persistence,
        ]

    def open(self, zk_path: str, persistence: str) -> Any:
        from kazoo.client import KazooClient

        backend = _persistence(persistence)
        counter = KazooClient(hosts=ZK_HOSTS)
        counter.start()
        return _board(zk_path, backend), backend, counter, zk_path

    def post(self, poster: Any, key: str, trace_dir: str, delay: float) -> None:
        import peer_jobboard  # by module name, so the conductor can import the factory

        board, backend, _, _ = poster
        book = models.LogBook(key)
        flow_detail = models.FlowDetail(key, uuid=str(uuid.uuid4()))
        book.add(flow_detail)
        with contextlib.closing(backend.get_connection()) as conn:
            conn.save_logbook(book)
        engines.save_factory_details(flow_detail, peer_jobboard.one_step, [], {}, backend=backend)
        board.post(key, book=book, details={"store": {"key": key, "trace_dir": trace_dir, "delay": delay}})

    def remaining(self, poster: Any) -> int:
        _, _, counter, path = poster
        return sum(1 for c in counter.get_children(path) if c.startswith("job") and not c.endswith(".lock"))

    def close(self, poster: Any) -> None:
        board, backend, counter, path = poster
        board.close()
        backend.close()
        counter.delete(path, recursive=True)
        for sibling in (".trash", ".entities"):  # TaskFlow keeps these beside the board's path
            if counter.exists(f"{path.rsplit('/', 1)[0]}/{sibling}"):
                counter.delete(f"{path.rsplit('/', 1)[0]}/{sibling}", recursive=True)
        counter.stop()
        counter.close()


def conductor(name: str, zk_path: str, persistence_url: str) -> int:
    import signal

    from taskflow.conductors import backends

    board = _board(zk_path, _persistence(persistence_url))
    runner = backends.fetch("blocking", name, board, persistence=board._persistence, engine="serial")
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    print("READY", file=sys.stderr, flush=True)
    runner.run()
    board.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--conductor"]:
        return conductor(args[1], args[3], args[5])
    opts = parse_options(args)
    log(f"taskflow job board: {opts}")
    emit(run_cases(TaskFlowSide(), opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
