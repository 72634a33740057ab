"""Flows the operator tests post by factory path: one that fails while a gate file exists, one that
sleeps (to be seen running). Importing this module has no side effects."""

from __future__ import annotations

import time
from pathlib import Path

from flowkit import LinearFlow, Task


class Gate(Task):
    """Fails while the file ``gate`` exists: an operator removes it, then retries the flow."""

    default_provides = "passed"

    def execute(self, gate: str) -> str:
        if Path(gate).exists():
            raise RuntimeError(f"gate {gate} is closed")
        return "passed"


class Undo(Task):
    """Runs before the gate, so a failure has something to revert."""

    def execute(self) -> str:
        return "done"

    def revert(self, **kwargs: object) -> None:
        return None


class Nap(Task):
    def execute(self, seconds: float) -> None:
        time.sleep(seconds)


def gated(name: str = "gated") -> LinearFlow:
    return LinearFlow(name).add(Undo("prepare"), Gate("gate"))


def napping(name: str = "napping", steps: int = 2) -> LinearFlow:
    return LinearFlow(name).add(*[Nap(f"nap-{i}") for i in range(steps)])


def approval(name: str = "approval") -> LinearFlow:
    """Undo, then a durable wait for ``approve-{ticket}``: parks under a conductor until the event."""
    from flowkit import WaitForEvent

    return LinearFlow(name).add(
        Undo("prepare"), WaitForEvent("approve", event="approve-{ticket}", provides="approval")
    )
