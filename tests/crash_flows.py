"""Flows the crash tests run in a child process, kill with SIGKILL, and resume in the test process.

Every task appends a line to ``<workdir>/<name>.execute`` (or ``.revert``) each time it runs, so the
test can count runs across processes. A task chosen to hang writes ``<workdir>/<name>.hang`` and then
sleeps, so the test knows exactly where the child is when it kills it; it hangs only while
``<workdir>/armed`` exists, so the resumed run (same factory, same arguments) goes through.

    python -m tests.crash_flows URL WORKDIR FLOW_UUID [--hang NAME] [--hang-revert NAME]
                                [--between NAME] [--fail NAME]

``--between NAME`` hangs in a listener right after NAME's SUCCESS is saved: between two atoms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from flowkit import LinearFlow, Task, engines
from flowkit.flow import Flow
from flowkit.persistence import backends
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.states import AtomState

NAMES = ("a", "b", "c", "d")
HANG_S = 600.0


class Boom(Exception):
    """The planned failure of the ``--fail`` task."""


def _mark(workdir: str, name: str, what: str) -> None:
    with open(Path(workdir) / f"{name}.{what}", "a") as f:
        f.write("x\n")


def _hang_if_armed(workdir: str, name: str) -> None:
    if (Path(workdir) / "armed").exists():
        (Path(workdir) / f"{name}.hang").write_text("hanging\n")
        time.sleep(HANG_S)


class Step(Task):
    """One step that counts its runs in files; it may hang (once armed) or fail."""

    def __init__(self, name: str, workdir: str, hang: bool, hang_revert: bool, fail: bool) -> None:
        super().__init__(name=name, provides=f"{name}_out")
        self.workdir, self.hang, self.hang_revert, self.fail = workdir, hang, hang_revert, fail

    def execute(self) -> dict[str, Any]:
        _mark(self.workdir, self.name, "execute")
        if self.hang:
            _hang_if_armed(self.workdir, self.name)
        if self.fail:
            raise Boom(f"{self.name} failed on purpose")
        return {"step": self.name}

    def revert(self, result: Any, **kwargs: Any) -> None:
        _mark(self.workdir, self.name, "revert")
        if self.hang_revert:
            _hang_if_armed(self.workdir, self.name)


def make_flow(
    workdir: str, hang: str | None = None, hang_revert: str | None = None, fail: str | None = None
) -> Flow:
    """The factory the crash tests record in the flow detail and rebuild the flow from."""
    return LinearFlow("crash").add(
        *(Step(n, workdir, hang=n == hang, hang_revert=n == hang_revert, fail=n == fail) for n in NAMES)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("workdir")
    p.add_argument("flow_uuid")
    p.add_argument("--hang")
    p.add_argument("--hang-revert")
    p.add_argument("--between")
    p.add_argument("--fail")
    a = p.parse_args(argv)
    backend = backends.fetch(a.url)
    with backend.get_connection() as conn:
        conn.upgrade()
    book = LogBook("crash-tests")
    fd = book.add(FlowDetail("crash", uuid=a.flow_uuid))
    factory_kwargs = {"hang": a.hang, "hang_revert": a.hang_revert, "fail": a.fail}
    engines.save_factory_details(fd, make_flow, [a.workdir], factory_kwargs)
    engine = engines.load(make_flow(a.workdir, **factory_kwargs), backend=backend, book=book, flow_detail=fd)
    if a.between:

        def hang_after(state: AtomState, details: dict[str, Any]) -> None:
            if details["atom_name"] == a.between:
                _hang_if_armed(a.workdir, "between")

        engine.atom_notifier.register(AtomState.SUCCESS, hang_after)
    try:
        engine.run()
    except Boom:
        return 1
    return 0


if __name__ == "__main__":
    # Run the module's importable copy, so the tasks and Boom are tests.crash_flows.*, not __main__.*:
    # the resuming process rebuilds the flow and the saved failure by those names.
    from tests.crash_flows import main as importable_main

    sys.exit(importable_main())
