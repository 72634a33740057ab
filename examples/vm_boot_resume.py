"""Boot a virtual machine, crash half way, and resume from the database.

    python examples/vm_boot_resume.py                # SQLite file in a temporary directory
    python examples/vm_boot_resume.py --db URL       # any persistence URL (postgresql://..., dir:///...)

The flow runs in a child process. The child kills itself (SIGKILL: no cleanup, no revert, nothing
flushed on the way out) while the VM is starting. This process then reads the flow detail back from
the database, rebuilds the flow from the factory saved with it, and runs it again: the steps that had
finished are not repeated, their saved results feed the steps after them, and the step that was
running when the process died runs again.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile

from flowkit import Flow, GraphFlow, LinearFlow, Task, engines
from flowkit.context import current_atom_uuid
from flowkit.persistence import backends, models


class AllocateIP(Task):
    default_provides = "ip"

    def execute(self, vm_name: str) -> str:
        print(f"  allocate-ip: 10.0.0.7 for {vm_name}")
        return "10.0.0.7"


class CreateVolume(Task):
    default_provides = "volume"

    def execute(self, vm_name: str) -> str:
        print(f"  create-volume: vol-{vm_name}")
        return f"vol-{vm_name}"


class StartVM(Task):
    default_provides = "vm_id"

    def execute(self, vm_name: str, ip: str, volume: str, crash: bool = False) -> str:
        # The atom's uuid is the same after a resume: a real driver passes it to the cloud as an
        # idempotency key, so a VM half-started by the dead process is found, not created twice.
        print(f"  start-vm: {vm_name} on {ip} with {volume} (key {str(current_atom_uuid())[:8]})")
        if crash:
            print("  ** the process dies here **", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return f"vm-{vm_name}"


class Announce(Task):
    def execute(self, vm_id: str, ip: str) -> None:
        print(f"  announce: {vm_id} is up at {ip}")


def make_boot_flow() -> Flow:
    """The flow; saved with the flow detail as this function's import path, so any process rebuilds it."""
    prepare = GraphFlow("prepare").add(AllocateIP("allocate-ip"), CreateVolume("create-volume"))
    return LinearFlow("boot-vm").add(prepare, StartVM("start-vm"), Announce("announce"))


def saved_states(db: str, flow_uuid: str) -> dict[str, str]:
    with backends.fetch(db).get_connection() as conn:
        return {atom.name: atom.state.value for atom in conn.get_flow_detail(flow_uuid)}


def first_run(db: str) -> None:
    """In the child process: save a new flow detail (with its factory) and run until the crash."""
    backend = backends.fetch(db)
    book = models.LogBook("vm-boot")
    engine = engines.load_from_factory(
        make_boot_flow, backend=backend, book=book, store={"vm_name": "web-1", "crash": True}
    )
    print(f"flow detail {engine.storage.flow_uuid}", flush=True)
    engine.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="persistence URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        first_run(args.db)
        return 0
    if args.db:
        return boot(args.db)
    with tempfile.TemporaryDirectory(prefix="vm-boot-") as work:
        return boot(f"sqlite:///{work}/flows.sqlite")


def boot(db: str) -> int:
    """Run the flow in a child process that dies half way, then resume it here."""
    with backends.fetch(db).get_connection() as conn:
        conn.upgrade()  # create the schema (idempotent)

    print("run 1, in a child process:", flush=True)
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", "--db", db],
        stdout=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    lines = child.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith("flow detail")))
    flow_uuid = next(line.split()[-1] for line in lines if line.startswith("flow detail"))
    print(f"child killed by signal {-child.returncode}; the database says:")
    for name, state in saved_states(db, flow_uuid).items():
        print(f"  {name:14} {state}")

    print("run 2, here, from the database:")
    engine = engines.load_from_detail(flow_uuid, backend=db, store={"crash": False})
    engine.run()
    print(f"flow {engine.storage.get_flow_state().value}: vm_id={engine.storage.fetch('vm_id')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
