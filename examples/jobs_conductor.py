"""Post jobs to a job board; a conductor claims each one, runs its flow and consumes it.

    python examples/jobs_conductor.py                 # SQL board in a SQLite file (no server needed)
    python examples/jobs_conductor.py --zookeeper     # ZooKeeper board at 127.0.0.1:2181
    python examples/jobs_conductor.py --zookeeper --hosts zk1:2181,zk2:2181

The producer posts one job per order: ``post_flow`` saves a logbook with a flow detail naming the
factory that builds the flow (by import path: ``jobs_conductor:make_order_flow``, this file as a
module), stores the order with it, and posts the job. The conductor (here a
thread of the same program; usually ``flowkit-conductor`` on other machines) claims jobs one at a
time, rebuilds each flow from its factory, runs it with the job's store, and consumes the job. Were
it to die half way, another conductor would claim the job and resume the flow from the database.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid

from flowkit import Flow, LinearFlow, Task
from flowkit.conductors import backends as conductors
from flowkit.jobboard import backends as boards
from flowkit.persistence import backends

# Runs in the conductor; one lock so that lines printed by different jobs do not interleave.
PRINT = threading.Lock()


class Pick(Task):
    default_provides = "parcel"

    def execute(self, order: str, items: list[str]) -> str:
        with PRINT:
            print(f"  {order}: picking {', '.join(items)}")
        return f"parcel-{order}"


class Ship(Task):
    def execute(self, order: str, parcel: str) -> None:
        with PRINT:
            print(f"  {order}: shipped {parcel}")


def make_order_flow() -> Flow:
    """The job's flow. Jobs name it by import path: the conductor must be able to import it."""
    return LinearFlow("fulfil-order").add(Pick("pick"), Ship("ship"))


FACTORY = "jobs_conductor:make_order_flow"
ORDERS = {"order-1": ["book"], "order-2": ["lamp", "bulb"], "order-3": ["kettle"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zookeeper", action="store_true", help="use a ZooKeeper board")
    parser.add_argument("--hosts", default="127.0.0.1:2181", help="ZooKeeper hosts (with --zookeeper)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jobs-") as work:
        post_and_conduct(args, work)


def post_and_conduct(args: argparse.Namespace, work: str) -> None:
    """Post the orders as jobs, then run a conductor until the board is empty."""
    persistence = backends.fetch(f"sqlite:///{work}/flows.sqlite")
    with persistence.get_connection() as conn:
        conn.upgrade()
    if args.zookeeper:  # a fresh path per run, so old jobs of other runs are not picked up
        url = f"zookeeper://{args.hosts}/flowkit-example-{uuid.uuid4().hex[:8]}?timeout=10"
    else:
        url = f"sqlite:///{work}/board.sqlite"

    # The producer: one job per order.
    with boards.fetch("orders", url, persistence=persistence) as board:
        for order, items in ORDERS.items():
            # The factory by import path: this file is the module ``jobs_conductor`` to a conductor
            # (with examples/ on its path), wherever that conductor runs.
            board.post_flow(FACTORY, store={"order": order, "items": items}, name=order)
            print(f"posted {order}")
        print(f"{board.job_count()} jobs on the board")

    # The consumer: a conductor running one job at a time ("blocking"), allowed to build flows only
    # from factories defined in the module the jobs name.
    board = boards.fetch("orders", url, persistence=persistence)
    board.connect()
    conductor = conductors.fetch("blocking", "conductor-1", board, allow=["jobs_conductor"], wait_timeout=0.1)
    runner = threading.Thread(target=conductor.run, name="conductor")
    runner.start()
    deadline = time.monotonic() + 60
    while board.job_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    conductor.stop()
    conductor.wait(30)
    runner.join(30)
    print(f"{board.job_count()} jobs left on the board")
    board.close()
    if args.zookeeper:
        remove_zookeeper_path(args.hosts, url.split("/")[3].split("?")[0])


def remove_zookeeper_path(hosts: str, path: str) -> None:
    """Delete this run's board from ZooKeeper (an SQLite board goes with its temporary directory)."""
    from flowkit.utils import kazoo_utils

    client = kazoo_utils.make_client({"hosts": hosts})
    client.start(timeout=10)
    try:
        client.delete(f"/{path}", recursive=True)
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
