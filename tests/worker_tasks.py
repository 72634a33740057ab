"""Importable tasks for the remote-worker tests, beyond the plain ones in :mod:`tests.support.tasks`.

Worker processes import task classes by path, so they live in a module with no side effects on import.
``Add``, ``Multiply`` and ``Progressing`` are :mod:`tests.support.tasks`'; test workers serve both
modules (``tests.support.workers.TASK_MODULES``). Tasks that must be observed from the test process
(which worker ran them, whether they started) write small files under a directory the test passes in
as an argument.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flowkit import Task


class Pair(Task):
    """Returns a tuple: it travels as a JSON list and still feeds a positional ``provides``."""

    default_provides = ("first", "second")

    def execute(self) -> tuple[int, str]:
        return 1, "two"


class Noop(Task):
    def execute(self) -> None:
        return None


class WhereAmI(Task):
    """Provides the pid of the worker process that ran it (after ``pause`` seconds)."""

    def execute(self, pause: float = 0.0) -> int:
        time.sleep(pause)
        return os.getpid()


class ReturnsSet(Task):
    """Returns a value that JSON cannot carry back to the engine."""

    def execute(self) -> Any:
        return {1, 2}


class Echo(Task):
    default_provides = "echo"

    def execute(self, value: Any) -> Any:
        return value


class Explode(Task):
    """Fails with a ValueError; its revert records what it was given."""

    def execute(self, marker_dir: str) -> None:
        raise ValueError(f"boom in {self.name}")

    def revert(self, marker_dir: str, result: Any, flow_failures: Any, **kwargs: Any) -> None:
        Path(marker_dir, f"reverted-{self.name}").write_text(repr(result))


class Remember(Task):
    """Succeeds; its revert writes down the result and failures it received (to prove they travelled)."""

    default_provides = "remembered"

    def execute(self, marker_dir: str) -> str:
        return f"made-by-{self.name}"

    def revert(self, marker_dir: str, result: Any, flow_failures: Any, **kwargs: Any) -> None:
        names = sorted(flow_failures)
        kinds = sorted(f.exc_type_names[0] for f in flow_failures.values())
        Path(marker_dir, f"reverted-{self.name}").write_text(f"{result}|{names}|{kinds}")


class SlowOnce(Task):
    """The first run records its pid in ``marker_dir`` and then sleeps; any later run returns at once.

    A test kills the process named in the marker while it sleeps; the retry finds the marker and succeeds
    on another worker.
    """

    default_provides = "slow_once"

    def execute(self, marker_dir: str, sleep: float = 30.0) -> int:
        marker = Path(marker_dir, f"started-{self.name}")
        if marker.exists():
            return os.getpid()
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.rename(marker)
        time.sleep(sleep)
        return os.getpid()


class Sleepy(Task):
    """Sleeps, and writes a marker when it starts (so a test knows it is running)."""

    default_provides = "slept"

    def execute(self, marker_dir: str, seconds: float = 1.0) -> float:
        Path(marker_dir, f"started-{self.name}").write_text(str(os.getpid()))
        time.sleep(seconds)
        return seconds


class Ledger(Task):
    """Writes one line per execute and per revert to ``<marker_dir>/ran-<name>`` / ``reverted-<name>``.

    The fault tests count these lines: a task that ran twice, or ran and was not reverted when the
    flow failed, shows up there whatever the engine believes.
    """

    def execute(self, marker_dir: str, pause: float = 0.0) -> int:
        with Path(marker_dir, f"ran-{self.name}").open("a") as out:
            out.write(f"{os.getpid()}\n")
        time.sleep(pause)
        return os.getpid()

    def revert(self, marker_dir: str, **kwargs: Any) -> None:
        with Path(marker_dir, f"reverted-{self.name}").open("a") as out:
            out.write(f"{os.getpid()}\n")


class Hang(Task):
    """Sleeps ``hang`` seconds on its first run (a task stuck on a live worker); later runs return."""

    default_provides = "hung"

    def execute(self, marker_dir: str, hang: float = 3600.0) -> int:
        marker = Path(marker_dir, f"started-{self.name}")
        first = not marker.exists()
        with marker.open("a") as out:
            out.write(f"{os.getpid()}\n")
        if first:
            time.sleep(hang)
        return os.getpid()

    def revert(self, marker_dir: str, **kwargs: Any) -> None:
        with Path(marker_dir, f"reverted-{self.name}").open("a") as out:
            out.write(f"{os.getpid()}\n")


def echo_then_explode() -> Any:
    """A factory for a conductor's job: ``Echo`` runs, ``Explode`` fails, ``Echo`` is reverted."""
    from flowkit import LinearFlow

    return LinearFlow("echo-explode").add(Echo(name="echo"), Explode(name="explode"))


class ThreadName(Task):
    """Provides the name of the worker's thread that ran it."""

    def execute(self) -> str:
        import threading

        return threading.current_thread().name


class Interrupted(Task):
    """Raises KeyboardInterrupt, as Ctrl-C does in the main thread."""

    def execute(self) -> None:
        raise KeyboardInterrupt
