"""Importable tasks for process-executor tests.

The process executor starts its workers with the forkserver start method: each task is
pickled by reference to its class, so the classes must live in a module the workers can
import. Importing this module has no side effects.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from flowkit import Task


class Add(Task):
    """Adds two numbers; reports the worker's pid in its result."""

    default_provides = "sum"

    def execute(self, x: int, y: int) -> int:
        return x + y


class Multiply(Task):
    default_provides = "product"

    def execute(self, sum: int, factor: int = 10) -> int:
        return sum * factor


class WhereAmI(Task):
    """Provides the pid of the process that ran it."""

    default_provides = "pid"

    def execute(self) -> int:
        return os.getpid()


class Progressing(Task):
    """Reports progress 0.25, 0.5, 1.0 while it runs."""

    def execute(self) -> str:
        for p in (0.25, 0.5, 1.0):
            self.update_progress(p)
        return "done"


class ReturnsLock(Task):
    """Returns a value that cannot be pickled back to the engine."""

    def execute(self) -> Any:
        return threading.Lock()


class Explode(Task):
    """Always fails with a ValueError carrying its name."""

    def execute(self) -> None:
        raise ValueError(f"explode in {self.name}")


def double(value: int) -> int:
    """A module-level function: a FunctorTask made from it pickles by reference."""
    return value * 2
