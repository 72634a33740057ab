"""Flows with durable waits, for the wait tests (in process, in a child process killed mid-sleep, and
under conductors).

    python -m tests.wait_flows URL WORKDIR FLOW_UUID SECONDS

runs :func:`sleepy` (a Sleep of SECONDS between two steps) saved at URL; it writes
``<WORKDIR>/sleeping`` once the Sleep has begun (its deadline is saved by then), so the test can kill it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from flowkit import LinearFlow, Sleep, Task, UnorderedFlow, WaitForEvent, engines, retry
from flowkit.flow import Flow
from flowkit.persistence import backends
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.states import AtomState


class Note(Task):
    """Appends its name (and what it got) to ``<workdir>/log``: runs and reverts are counted across
    processes."""

    def __init__(self, name: str, workdir: str, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.workdir = workdir

    def execute(self, **kwargs: Any) -> str:
        with open(Path(self.workdir) / "log", "a") as f:
            f.write(f"{self.name} {sorted(kwargs.items())}\n")
        return self.name

    def revert(self, *args: Any, **kwargs: Any) -> None:
        with open(Path(self.workdir) / "log", "a") as f:
            f.write(f"revert {self.name}\n")


def sleepy(workdir: str, seconds: float) -> Flow:
    """before -> Sleep(seconds) -> after."""
    return LinearFlow("sleepy").add(
        Note("before", workdir), Sleep("nap", seconds=seconds), Note("after", workdir)
    )


def approval(workdir: str, timeout: float | None = None) -> Flow:
    """before -> WaitForEvent("approve-{cluster_id}") providing ``approval`` -> after (gets it)."""
    return LinearFlow("approval").add(
        Note("before", workdir),
        WaitForEvent("approve", event="approve-{cluster_id}", timeout=timeout, provides="approval"),
        Note("after", workdir, requires=["approval"]),
    )


def naps(workdir: str, n: int, seconds: float) -> Flow:
    """``n`` Sleeps of ``seconds`` in a row, then a note: a flow that parks ``n`` times."""
    return LinearFlow("naps").add(
        *(Sleep(f"nap-{i}", seconds=seconds) for i in range(n)), Note("after", workdir)
    )


class FailsFirst(Note):
    """Like :class:`Note`, but its first execute (by the log, across processes) fails."""

    def execute(self, **kwargs: Any) -> str:
        first = not any(line.startswith(f"{self.name} ") for line in read_log(self.workdir))
        super().execute(**kwargs)
        if first:
            raise RuntimeError(f"{self.name}: first attempt fails")
        return self.name


def nap_beside_a_retry_delay(workdir: str, seconds: float, delay: float) -> Flow:
    """A Sleep of ``seconds`` beside a step whose first attempt fails and is retried after ``delay``:
    a flow that waits in-process (a retry delay is not parked), not parked, while both are pending."""
    retried = LinearFlow("retried", retry=retry.Times(attempts=2, delay=delay)).add(
        FailsFirst("flaky", workdir)
    )
    return LinearFlow("busy").add(
        Note("before", workdir), UnorderedFlow("both").add(Sleep("nap", seconds=seconds), retried)
    )


def read_log(workdir: str | Path) -> list[str]:
    path = Path(workdir) / "log"
    return path.read_text().splitlines() if path.exists() else []


def main(argv: list[str]) -> int:
    url, workdir, flow_uuid, seconds = argv[0], argv[1], argv[2], float(argv[3])
    backend = backends.fetch(url)
    with backend.get_connection() as conn:
        conn.upgrade()
    book = LogBook("wait-tests")
    fd = book.add(FlowDetail("sleepy", uuid=flow_uuid))
    engines.save_factory_details(fd, sleepy, [workdir, seconds])
    engine = engines.load(sleepy(workdir, seconds), backend=backend, book=book, flow_detail=fd)

    def began(state: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == "nap":
            (Path(workdir) / "began").write_text("")

    engine.atom_notifier.register(AtomState.RUNNING, began)
    engine.run()
    return 0


if __name__ == "__main__":
    from tests.wait_flows import main as importable_main  # the tasks are tests.wait_flows.*, not __main__.*

    sys.exit(importable_main(sys.argv[1:]))
