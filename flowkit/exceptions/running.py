"""Errors of running a flow that are not the tasks' own failures (:class:`ExecutionError`): a
transition the state machine refuses, a cancel, a timeout, a coroutine where a result was due.
"""

from __future__ import annotations

from flowkit.exceptions.base import FlowkitError


class ExecutionError(FlowkitError):
    """Something went wrong in running a flow that is not the tasks' own failure."""


class InvalidStateError(ExecutionError):
    """A state transition that the state machine does not allow."""

    def __init__(self, kind: str, name: str, old: str, new: str) -> None:
        super().__init__(kind, name, old, new)
        self.kind = kind
        self.name = name
        self.old = old
        self.new = new

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} cannot go from {self.old} to {self.new}"


class Cancelled(ExecutionError):
    """The flow was cancelled (``engine.cancel(reason)``, ``board.cancel(job, reason)``) and reverted.

    ``engine.run()`` raises it once the flow is REVERTED; the flow's own failures, if it was failing
    too, are its ``__cause__``. ``reason`` is what the canceller said.
    """

    def __init__(self, flow: str, reason: str) -> None:
        super().__init__(flow, reason)
        self.flow = flow
        self.reason = reason

    def __str__(self) -> str:
        return f"flow {self.flow!r} was cancelled and reverted: {self.reason}"


class AtomTimeout(ExecutionError):
    """An atom's execute or revert ran longer than its ``timeout``; it fails (or its revert fails)
    like any other failure, and revert or retry take it from there."""

    def __init__(self, atom: str, action: str, timeout: float, where: str = "") -> None:
        super().__init__(atom, action, timeout, where)
        self.atom = atom
        self.action = action
        self.timeout = timeout
        self.where = where

    def __str__(self) -> str:
        where = f" on {self.where}" if self.where else ""
        return (
            f"{self.action} of atom {self.atom!r} did not finish within its timeout of {self.timeout:g}s"
            f"{where}"
        )


class WaitTimeout(ExecutionError):
    """A durable wait (:class:`flowkit.WaitForEvent`) reached its ``timeout`` before its event came; its
    atom fails with this, and revert or retry take it from there."""

    def __init__(self, atom: str, event: str, timeout: float) -> None:
        super().__init__(atom, event, timeout)
        self.atom = atom
        self.event = event
        self.timeout = timeout

    def __str__(self) -> str:
        return f"atom {self.atom!r} waited {self.timeout:g}s for event {self.event!r}, which did not come"


class CoroutineResult(ExecutionError):
    """A plain (``def``) execute or revert returned a coroutine. The engine never stores one as a result:
    declare the method ``async def`` and the engine awaits it on its event loop."""

    def __init__(self, atom: str, action: str) -> None:
        super().__init__(atom, action)
        self.atom = atom
        self.action = action

    def __str__(self) -> str:
        return (
            f"{self.action} of atom {self.atom!r} returned a coroutine: declare it `async def {self.action}` "
            f"so the engine awaits it (a coroutine is never stored as a result)"
        )
