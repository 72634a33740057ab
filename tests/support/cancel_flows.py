"""Flows for the cancel tests: steps that hold until a file appears, so a cancel lands mid-way.

Importable by name (process pools pickle tasks by reference; conductors rebuild flows from a factory
path); what the steps did goes to a journal file (``tests.support.journal``) whose path is in the
store. ``python -m tests.support.cancel_flows DB FLOW_UUID WORKDIR`` runs the crash test's child: it
cancels its flow once ``b`` runs and hangs in ``b``'s revert, to be killed there.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from flowkit import LinearFlow, Task
from tests.support.journal import record

HOLD_S = 30.0
"""Longest a held step waits for its release file (a test that forgot to release it fails, not hangs)."""


def _hold(path: str | None) -> None:
    deadline = time.monotonic() + HOLD_S
    while path and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class Held(Task):
    """Records its execute; holds until ``release`` (a path) exists; fails with ``fail``.

    Its revert records itself and holds until ``revert_release`` exists (when given).
    """

    def execute(
        self,
        journal: str,
        release: str | None = None,
        revert_release: str | None = None,
        fail: bool = False,
        **extra: Any,
    ) -> str:
        record(journal, "execute", self.name)
        _hold(release)
        if fail:
            raise RuntimeError(f"{self.name} failed")
        return self.name

    def revert(self, **kwargs: Any) -> None:
        failures = kwargs.get("flow_failures") or {}
        record(kwargs["journal"], "revert", self.name, flow_failures=sorted(failures))
        _hold(kwargs.get("revert_release"))
        record(kwargs["journal"], "reverted", self.name)


def held(name: str, **inject: Any) -> Held:
    return Held(name=name, inject=inject)


def three_steps(
    hold_b: str | None = None, hold_b_revert: str | None = None, fail_c: bool = False
) -> LinearFlow:
    """``a`` -> ``b`` -> ``c``; ``b`` holds on ``hold_b`` (and its revert on ``hold_b_revert``)."""
    return LinearFlow("three").add(
        held("a"),
        held("b", release=hold_b, revert_release=hold_b_revert),
        held("c", fail=fail_c),
    )


def slow_steps(n: int = 20, pause: float = 0.2, revert_pause: float = 0.0) -> LinearFlow:
    """``n`` steps of ``pause`` seconds each (reverts of ``revert_pause``): a flow a conductor is still
    running (or reverting) when something happens to it."""
    inject = {"pause": pause, "revert_pause": revert_pause}
    return LinearFlow("slow").add(*(Slow(name=f"s{i}", inject=inject) for i in range(n)))


class Slow(Task):
    """Sleeps ``pause`` seconds (``revert_pause`` in revert); writes its execute and revert to the journal."""

    def execute(self, journal: str, pause: float, revert_pause: float = 0.0) -> str:
        record(journal, "execute", self.name)
        time.sleep(pause)
        return self.name

    def revert(self, journal: str, revert_pause: float = 0.0, **kwargs: Any) -> None:
        record(journal, "revert", self.name)
        time.sleep(revert_pause)
        record(journal, "reverted", self.name)


def main(argv: list[str]) -> int:
    """The crash child: run the flow FLOW_UUID saved in DB, cancel it when ``b`` runs, hang in its revert."""
    from flowkit import engines
    from flowkit.notifier import ANY
    from flowkit.persistence import backends
    from flowkit.states import AtomState

    db, flow_uuid, workdir = argv
    backend = backends.fetch(db)
    with backend.get_connection() as conn:
        flow_detail = conn.get_flow_detail(flow_uuid)
    engine = engines.load_from_detail(flow_detail, backend=backend, store={"journal": f"{workdir}/journal"})

    def on_atom(state: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == "b" and state is AtomState.RUNNING:
            engine.cancel("operator asked")
        if details["atom_name"] == "b" and state is AtomState.REVERTING:
            Path(workdir, "reverting-b").write_text("")

    engine.atom_notifier.register(ANY, on_atom)
    engine.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
