"""How long a cancel takes to reach the conductor holding the job, on each board (not a suite: figures only).

    .venv/bin/python bench/cancel_latency.py [--boards sqlite,postgresql,zookeeper] [--samples 10]

Two figures per board, each the median and the worst of ``--samples`` cancels, the operator's client and
the holder's being two board objects (two connections, as two processes would have):

- *heard*: from ``board.cancel(job)`` returning in the operator's client to the holder's cancel listener
  being called (a ZooKeeper data watch; the SQL board's poll, woken by NOTIFY on PostgreSQL; on SQLite
  the poll's 0.25 s, in phase with the holder's own post here, so the worst case);
- *stopped*: the same, with a real :class:`conductor.Conductor` (in this process) running the job's flow of
  10 ms steps, to the flow leaving RUNNING in persistence (read every 5 ms): the step that runs when the
  cancel comes finishes first, so up to 10 ms of this is the step.

PostgreSQL at ``--postgres`` (default the local ``test`` database), ZooKeeper at ``--zookeeper``; a board
whose server is not there is skipped with the reason. About 20 s for the three boards.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conductor import Conductor
from flowkit.engines.persistence import backend_for
from flowkit.jobboard import JobBoard
from flowkit.jobboard import backends as boards
from flowkit.states import FlowState


def _wait(check: Callable[[], bool], timeout: float, step: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(step)


@contextlib.contextmanager
def _url(kind: str, work: Path, args: argparse.Namespace) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{work}/board.db"
    elif kind == "postgresql":
        yield args.postgres
    else:
        from kazoo.client import KazooClient

        path = f"/flowkit-bench/cancel-{secrets.token_hex(4)}"
        client = KazooClient(hosts=args.zookeeper, timeout=4)
        client.start(timeout=5)
        try:
            yield f"zookeeper://{args.zookeeper}{path}?timeout=4"
        finally:
            with contextlib.suppress(Exception):
                client.delete(path, recursive=True)
            client.stop()
            client.close()


def _post(board: JobBoard, work: Path, n: int) -> object:
    store = {"journal": str(work / "journal")}
    return board.post_flow(
        "tests.support.cancel_flows:slow_steps", store=store, factory_kwargs={"n": n, "pause": 0.01}
    )


def heard(holder: JobBoard, operator: JobBoard, work: Path, samples: int) -> list[float]:
    told: dict[str, float] = {}
    holder.add_cancel_listener(lambda uuid, _reason: told.setdefault(uuid, time.monotonic()))
    out = []
    for _ in range(samples):
        job = _post(holder, work, 1)
        holder.claim(job, "bench")  # type: ignore[arg-type]
        asked = time.monotonic()
        operator.cancel(job.uuid, "bench")  # type: ignore[attr-defined]
        _wait(lambda: job.uuid in told, 10)  # type: ignore[attr-defined]  # noqa: B023
        out.append(told[job.uuid] - asked)  # type: ignore[attr-defined]
        holder.mark_cancelled(job, "bench")  # type: ignore[arg-type]
    return out


def stopped(holder: JobBoard, operator: JobBoard, persistence: str, work: Path, samples: int) -> list[float]:
    backend = backend_for(persistence)

    def state(job: object) -> FlowState:
        with backend.get_connection() as conn:
            return conn.get_flow_detail(job.flow_uuid).state  # type: ignore[attr-defined]

    conductor = Conductor("bench-conductor", holder, persistence, wait_timeout=0.1, allow=["tests.support"])
    thread = threading.Thread(target=conductor.run, daemon=True)
    thread.start()
    out = []
    try:
        for _ in range(samples):
            job = _post(operator, work, 1000)
            _wait(lambda: state(job) is FlowState.RUNNING, 20, 0.005)  # noqa: B023
            time.sleep(0.05)
            asked = time.monotonic()
            operator.cancel(job.uuid, "bench")  # type: ignore[attr-defined]
            _wait(lambda: state(job) is not FlowState.RUNNING, 10, 0.005)  # noqa: B023
            out.append(time.monotonic() - asked)
            _wait(lambda: operator.state_of(job) == "CANCELLED", 20, 0.01)  # type: ignore[arg-type]  # noqa: B023
    finally:
        conductor.stop()
        thread.join(15)
    return out


def _show(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:6.1f} ms   worst {max(values) * 1000:6.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", default="sqlite,postgresql,zookeeper")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--zookeeper", default="127.0.0.1:2181")
    args = parser.parse_args()
    for kind in args.boards.split(","):
        with tempfile.TemporaryDirectory() as tmp, _url(kind, Path(tmp), args) as url:
            work = Path(tmp)
            persistence = f"sqlite:///{work}/flows.db"
            name = f"bench-{secrets.token_hex(4)}"
            try:
                holder = boards.fetch(name, url, persistence=persistence)
                operator = boards.fetch(name, url, persistence=persistence)
                holder.connect()
                operator.connect()
            except Exception as exc:
                print(f"{kind:10}  skipped: {exc}")
                continue
            try:
                print(f"{kind:10}  heard   {_show(heard(holder, operator, work, args.samples))}")
                print(
                    f"{kind:10}  stopped {_show(stopped(holder, operator, persistence, work, args.samples))}"
                )
            finally:
                operator.close()
                holder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
