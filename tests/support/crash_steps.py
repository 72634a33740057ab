"""The steps of the database-crash flows, shared by tests/test_persistence_dbcrash.py and
bench/faults_dbcrash.py: each sleeps a few milliseconds, so a crash lands between saved transitions,
and may call a hook (the crash) from inside its execute or revert."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from flowkit import Task

STEP_S = 0.003
"""How long each step's execute and revert take."""


class Boom(Exception):
    """The planned failure that makes the flow revert."""


class Step(Task):
    """Sleeps ``STEP_S``; calls ``on_execute`` / ``on_revert`` and, with ``fail``, raises Boom."""

    def __init__(
        self,
        name: str,
        on_execute: Callable[[], None] | None = None,
        on_revert: Callable[[], None] | None = None,
        fail: bool = False,
    ) -> None:
        super().__init__(name=name)
        self.on_execute, self.on_revert, self.fail = on_execute, on_revert, fail

    def execute(self) -> str:
        time.sleep(STEP_S)
        if self.on_execute is not None:
            self.on_execute()
        if self.fail:
            raise Boom(self.name)
        return f"result of {self.name}"

    def revert(self, **kwargs: Any) -> None:
        time.sleep(STEP_S)
        if self.on_revert is not None:
            self.on_revert()


def once(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` wrapped to run on the first call only (a crash hook reached by several paths)."""
    done = threading.Event()

    def call() -> None:
        if not done.is_set():
            done.set()
            fn()

    return call
