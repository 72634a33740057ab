"""TaskFlow's exception names, for code moving from TaskFlow (see docs/migrating-from-taskflow.md).

Each name is one of flowkit's own classes, so ``except exceptions.MissingDependencies`` catches what
flowkit raises. Where TaskFlow has one name for a family that flowkit splits (DependencyFailure:
cycles, missing and ambiguous dependencies), the name is flowkit's root of that family. The few
TaskFlow errors flowkit has no class of its own for are defined here, under :class:`FlowkitError`,
with TaskFlow's helper :func:`raise_with_cause`.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any, NoReturn

from flowkit.exceptions.base import FlowkitError
from flowkit.exceptions.flow import (
    AmbiguousProviderError,
    CompilationError,
    DuplicateNameError,
    InvalidFlowError,
    MissingRequirementError,
)
from flowkit.exceptions.jobboard import ConductorError, JobBoardError, UnclaimableJobError
from flowkit.exceptions.running import ExecutionError, InvalidStateError
from flowkit.exceptions.storage import StorageError

TaskFlowException = FlowkitError
CompilationFailure = CompilationError
DependencyFailure = CompilationError
MissingDependencies = MissingRequirementError
AmbiguousDependency = AmbiguousProviderError
Duplicate = DuplicateNameError
ExecutionFailure = ExecutionError
InvalidState = InvalidStateError
StorageFailure = StorageError
JobFailure = JobBoardError
UnclaimableJob = UnclaimableJobError
ConductorFailure = ConductorError


class IncompatibleVersion(FlowkitError):
    """Stored data was written by a version this one cannot read (TaskFlow's name)."""


class Empty(FlowkitError):
    """Nothing is there to take (TaskFlow's name)."""


class MultipleChoices(FlowkitError):
    """Several choices match where one was expected (TaskFlow's name)."""


class DisallowedAccess(FlowkitError):
    """An operation on a record is not allowed in its state (TaskFlow's name)."""


class NotImplementedError(FlowkitError, builtins.NotImplementedError):  # TaskFlow's name
    """Something a backend does not offer (TaskFlow's name; also the builtin NotImplementedError)."""


def raise_with_cause(exc_cls: type[FlowkitError], message: str, *args: Any, **kwargs: Any) -> NoReturn:
    """Raise ``exc_cls(message, ...)`` caused by ``cause=`` or, without it, by the exception being
    handled now (TaskFlow's helper): both ``err.cause`` and ``err.__cause__`` are set."""
    if not (isinstance(exc_cls, type) and issubclass(exc_cls, FlowkitError)):
        raise InvalidFlowError(f"raise_with_cause needs a flowkit error class, got {exc_cls!r}")
    cause = kwargs.pop("cause", None)
    if cause is None:
        cause = sys.exception()
    raise exc_cls(message, *args, cause=cause, **kwargs) from cause
