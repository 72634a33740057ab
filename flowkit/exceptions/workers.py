"""Errors of remote workers and the worker-based engine (:class:`WorkerError`): no worker for a task,
no answer in time, a message that does not match the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowkit.exceptions.base import FlowkitError, _quote


class WorkerError(FlowkitError):
    """Errors of remote workers and the worker-based engine."""


class RequestTimeout(WorkerError):
    """No worker answered a request within its timeout."""


class NoWorkerAvailable(WorkerError):
    """No worker advertised the task on any of the topics searched."""

    def __init__(self, task: str, topics: Sequence[str], timeout: float) -> None:
        super().__init__(task, list(topics), timeout)
        self.task = task
        self.topics = list(topics)
        self.timeout = timeout

    def __str__(self) -> str:
        return (
            f"no worker for task {self.task!r} on topics {_quote(self.topics)} "
            f"answered within {self.timeout:g}s"
        )


class InvalidMessageError(WorkerError):
    """A message on the wire does not match the protocol schema."""
