"""Flows the console tests save and show, rebuilt by factory path (``tests.console_flows:nested``).

``gated`` waits on files: step ``<name>`` finishes only once ``<gate_dir>/<name>`` exists, so a test
watches the console while atoms are RUNNING and releases them one by one. Importing this module has no
side effects.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flowkit import GraphFlow, LinearFlow, Map, Task, UnorderedFlow
from flowkit.flow import Flow


class Gated(Task):
    """Runs until its gate file appears (or ``limit`` seconds pass), then returns its name."""

    def execute(self, gate_dir: str, limit: float = 60.0, **inputs: Any) -> str:
        gate = Path(gate_dir) / self.name
        deadline = time.monotonic() + limit
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.name

    def revert(self, result: Any, **kwargs: Any) -> None:
        time.sleep(0.05)


class Listed(Task):
    """Returns the list it was built with (what a Map maps over)."""

    def __init__(self, name: str, items: list[Any], provides: str) -> None:
        super().__init__(name=name, provides=provides)
        self.items = items

    def execute(self) -> list[Any]:
        return list(self.items)


class Fail(Task):
    """Fails with a ``RuntimeError`` naming itself."""

    def execute(self) -> None:
        raise RuntimeError(f"{self.name} cannot go on")


def nested() -> Flow:
    """prepare, then two parallel branches (one of them a linear subflow), then finish."""
    return LinearFlow("provision").add(
        Gated("prepare", provides="prepared"),
        UnorderedFlow("nodes").add(
            Gated("node-1", requires="prepared"),
            LinearFlow("node-2").add(Gated("node-2-disk", requires="prepared"), Gated("node-2-boot")),
        ),
        Gated("finish"),
    )


def graph() -> Flow:
    """A diamond on a graph flow: ``a`` feeds ``b`` and ``c``, both feed ``d``."""
    return GraphFlow("diamond").add(
        Gated("a", provides="x"),
        Gated("b", requires="x", provides="y"),
        Gated("c", requires="x", provides="z"),
        Gated("d", requires=("y", "z")),
    )


def failing() -> Flow:
    """Two gated steps, then a failure: the flow reverts both, newest first."""
    return LinearFlow("doomed").add(Gated("first"), Gated("second"), Fail("explode"))


def _host(k: int, host: Any) -> Flow:
    return LinearFlow("host").add(
        Gated("fetch"), Map("disks", over="disks", each=lambda j, disk: Gated("wipe"))
    )


def mapped() -> Flow:
    """A Map over three hosts, each item a gated ``fetch`` and a nested Map wiping two disks; then
    ``finish``. Item atoms are ``hosts[k].fetch``, ``hosts[k].disks`` and ``hosts[k].disks[j].wipe``."""
    return LinearFlow("fleet").add(
        Listed("list", ["h0", "h1", "h2"], provides="host_names"),
        Listed("list-disks", ["sda", "sdb"], provides="disks"),
        Map("hosts", over="host_names", each=_host),
        Gated("finish"),
    )
