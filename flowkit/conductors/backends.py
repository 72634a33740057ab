"""``fetch(kind, name, board, persistence=..., engine=..., ...)``: a conductor with TaskFlow's interface.

``"blocking"`` runs one job at a time, ``"nonblocking"`` up to ``max_simultaneous_jobs`` (default 4,
several at once being the point of that kind); both are
:class:`conductor.Conductor` underneath, which owns claiming, resuming, consuming and abandoning.
This module only adds what TaskFlow callers expect on top: ``run``/``stop``/``wait``, ``connect``/``close``
of the board, ``dispatching``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from conductor import Conductor
from flowkit.exceptions import ConductorError
from flowkit.jobboard import JobBoard
from flowkit.notifier import Notifier
from flowkit.persistence.backends import Backend

KINDS = {"blocking": 1, "nonblocking": 4}
"""Each kind and how many jobs it runs at once unless told (``max_simultaneous_jobs``)."""

__all__ = ["KINDS", "TaskFlowConductor", "fetch"]


class TaskFlowConductor:
    """A :class:`conductor.Conductor` (``.conductor``) driven the way TaskFlow code drives one."""

    def __init__(self, conductor: Conductor) -> None:
        self.conductor = conductor
        self._stopped = threading.Event()
        self._stopped.set()  # not running yet: wait() returns at once
        self._running = False

    @property
    def name(self) -> str:
        return self.conductor.name

    @property
    def notifier(self) -> Notifier:
        """The conductor's events (``running_start``, ``running_end``, ``job_consumed``,
        ``job_abandoned``), as TaskFlow's conductors send them."""
        return self.conductor.notifier

    @property
    def dispatching(self) -> bool:
        """Whether :meth:`run` is going."""
        return self._running

    def connect(self) -> None:
        """Connect the job board (TaskFlow callers do this before ``run``)."""
        self.conductor.board.connect()

    def close(self) -> None:
        """Close the job board."""
        self.conductor.board.close()

    def run(self, max_dispatches: int | None = None) -> None:
        """Claim and run jobs until :meth:`stop`. ``max_dispatches`` (stop after N jobs) is not offered."""
        if max_dispatches is not None:
            raise ConductorError("run(max_dispatches=...) is not supported; call stop() instead")
        self._stopped.clear()
        self._running = True
        try:
            self.conductor.run()
        finally:
            self._running = False
            self._stopped.set()

    def stop(self) -> None:
        """Ask :meth:`run` to return (running jobs are suspended at a safe point and abandoned)."""
        self.conductor.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for :meth:`run` to return; whether it did within ``timeout`` seconds."""
        return self._stopped.wait(timeout)


def fetch(
    kind: str,
    name: str,
    board: JobBoard,
    persistence: Backend | str | None = None,
    *,
    engine: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
    wait_timeout: float | None = None,
    max_simultaneous_jobs: int | None = None,
    allow: list[str] | None = None,
) -> TaskFlowConductor:
    """A conductor of ``kind`` (``"blocking"`` or ``"nonblocking"``) taking jobs from ``board``.

    ``persistence`` defaults to the board's own (the one its jobs were posted with).
    """
    if kind not in KINDS:
        raise ConductorError(f"unknown conductor kind {kind!r}; use one of {', '.join(KINDS)}")
    saver = persistence if persistence is not None else board.persistence
    if saver is None:
        raise ConductorError(f"conductor {name!r}: no persistence given and board {board!r} has none")
    made = Conductor(
        name,
        board,
        saver,
        engine=engine or "serial",
        max_jobs=max_simultaneous_jobs or KINDS[kind],
        allow=allow,
        engine_options=engine_options,
        wait_timeout=0.5 if wait_timeout is None else wait_timeout,
    )
    return TaskFlowConductor(made)
