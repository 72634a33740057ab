"""Tasks every dispatcher can run: importable by name, configured only through their arguments.

Process pools pickle a task by reference to its class, and workers build it from its class path with
nothing but its name (a worker serves the Task classes defined in the modules it is given, here
``tests.support.tasks``), so nothing may be passed to a constructor: what a task should do (fail, for how
many times, with which message) comes in as arguments (``inject``), and what it did goes to a journal file
(``tests.support.journal``) whose path is in the store. Arguments and results stay JSON-friendly for the
workers. Importing this module has no side effects.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from flowkit import Task
from flowkit.failure import Failure
from tests.support.journal import record


class DiskFull(Exception):
    """A task's own exception type: re-raised as itself on every dispatcher."""


def _facts(value: Any) -> Any:
    """A JSON-friendly view of what revert got: a Failure as its type and text."""
    if isinstance(value, Failure):
        return {"failure": value.exc_type_names[0], "text": value.exception_str}
    return value


class Step(Task):
    """Records its execute and revert in the journal; fails when asked.

    ``fail``: execute raises ``DiskFull(fail)`` on its first ``fail_times`` runs (every run when None).
    ``revert_fail``: revert raises ``KeyError(revert_fail)`` on its first ``revert_fail_times`` reverts.
    Extra symbols (``requires=``) are accepted, to draw data edges. Returns ``"<name>:<value>"``.
    """

    def execute(
        self,
        journal: str,
        value: Any = None,
        fail: str | None = None,
        fail_times: int | None = None,
        revert_fail: str | None = None,
        revert_fail_times: int | None = None,
        **extra: Any,
    ) -> str:
        runs = record(journal, "execute", self.name, value=value)
        if fail is not None and (fail_times is None or runs <= fail_times):
            raise DiskFull(fail)
        return f"{self.name}:{value}"

    def revert(self, **kwargs: Any) -> None:
        journal = kwargs["journal"]
        record(journal, "revert-start", self.name)
        failures = kwargs.get("flow_failures") or {}
        runs = record(
            journal,
            "revert",
            self.name,
            value=kwargs.get("value"),
            result=_facts(kwargs.get("result")),
            flow_failures={name: _facts(f)["failure"] for name, f in sorted(failures.items())},
        )
        limit = kwargs.get("revert_fail_times")
        if kwargs.get("revert_fail") is not None and (limit is None or runs <= limit):
            raise KeyError(kwargs["revert_fail"])
        record(journal, "revert-end", self.name)


class Echo(Task):
    """Records its execute and returns ``value`` as it is (a list feeds several ``provides``); extra
    symbols (``requires=``) are accepted, to draw data edges."""

    def execute(self, journal: str, value: Any = None, **extra: Any) -> Any:
        record(journal, "execute", self.name, value=value)
        return value


class Sleepy(Task):
    """Sleeps ``pause`` seconds in execute (on its first ``slow_times`` runs; every run when None) and
    ``revert_pause`` in revert, recording ``execute-start``/``execute-end`` and ``revert-start``/
    ``revert-end`` around each sleep: an ``-end`` missing means the call never came back."""

    def execute(self, journal: str, pause: float = 0.0, slow_times: int | None = None, **extra: Any) -> str:
        runs = record(journal, "execute-start", self.name)
        if slow_times is None or runs <= slow_times:
            time.sleep(pause)
        record(journal, "execute-end", self.name)
        return f"{self.name}:slept"

    def revert(self, journal: str, revert_pause: float = 0.0, **kwargs: Any) -> None:
        record(journal, "revert-start", self.name)
        time.sleep(revert_pause)
        record(journal, "revert-end", self.name)


class AsyncStep(Task):
    """``async def`` execute and revert: await ``pause`` (``revert_pause``) seconds, record ``execute``
    (``revert``) and, when cancelled meanwhile, ``cancelled`` (``revert-cancelled``); execute raises
    ``DiskFull(fail)`` when asked. Returns ``"<name>:<value>"`` and the name of the thread it ran on."""

    async def execute(
        self,
        journal: str,
        value: Any = None,
        pause: float = 0.0,
        fail: str | None = None,
        **extra: Any,
    ) -> list[Any]:
        try:
            await asyncio.sleep(pause)
        except asyncio.CancelledError:
            record(journal, "cancelled", self.name)
            raise
        record(journal, "execute", self.name, value=value)
        if fail is not None:
            raise DiskFull(fail)
        return [f"{self.name}:{value}", threading.current_thread().name]

    async def revert(self, journal: str, revert_pause: float = 0.0, **kwargs: Any) -> None:
        try:
            await asyncio.sleep(revert_pause)
        except asyncio.CancelledError:
            record(journal, "revert-cancelled", self.name)
            raise
        record(journal, "revert", self.name, result=_facts(kwargs.get("result")))


class ReturnsCoroutine(Task):
    """A plain ``def execute`` that returns a coroutine (a bug the engine must name, not store)."""

    def execute(self) -> Any:
        return asyncio.sleep(0)


class Progressing(Task):
    """Reports progress 0.25, 0.5, 1.0 while it runs."""

    def execute(self) -> str:
        for p in (0.25, 0.5, 1.0):
            self.update_progress(p)
        return "done"


class Add(Task):
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


class Whereabouts(Task):
    """Provides ``[pid, thread name]`` of where it ran, to see which dispatcher ran it."""

    default_provides = "where"

    def execute(self) -> list[Any]:
        return [os.getpid(), threading.current_thread().name]


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


class Hold(Task):
    """Records ``hold-start``, sleeps ``seconds``, records ``hold-end`` and returns ``value``: how many run
    at once is read from the journal (a Map's ``max_parallel`` on every dispatcher)."""

    def execute(self, journal: str, value: Any = None, seconds: float = 0.05, **extra: Any) -> Any:
        import time

        record(journal, "hold-start", self.name, value=value)
        time.sleep(seconds)
        record(journal, "hold-end", self.name, value=value)
        return value
