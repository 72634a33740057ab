"""Every error flowkit raises itself, under one root: :class:`FlowkitError`.

Sub-roots group errors by the layer that raises them, so callers can catch
"anything wrong with my flow's shape" (:class:`CompilationError`) apart from
"the database went away" (:class:`StorageError`). Messages name the atoms,
symbols, jobs or URLs involved, because an error that says *what* is wrong but
not *where* costs an operator an afternoon.

All exceptions here survive pickling (they travel between processes in the
process executor and between machines as ``Failure`` dicts): each keeps its
constructor arguments in ``self.args`` so the default ``__reduce__`` rebuilds it.

The classes are written in one module per concept (``base``, ``inputs``, ``flow``, ``running``,
``failures``, ``storage``, ``jobboard``, ``backends``, ``workers``, ``taskflow``) and all imported
from here, the one public path. Each class's (and function's) ``__module__`` is set to
``flowkit.exceptions``: a failure saved in a database names its exception as
``flowkit.exceptions.ClaimLost`` (its ``exc_type_names``), pickles name the class the same way, and
``Failure.check("flowkit.exceptions.X")`` is written in users' code, so the name a class is known by
must not depend on the module it is written in.
"""

from __future__ import annotations

from flowkit.exceptions.backends import MissingExtraError, UnknownBackendError
from flowkit.exceptions.base import FlowkitError, details_of
from flowkit.exceptions.failures import RemoteError, WrappedFailure
from flowkit.exceptions.flow import (
    AmbiguousProviderError,
    CompilationError,
    CycleError,
    DuplicateNameError,
    FactoryImportError,
    InvalidAtomArgumentError,
    InvalidFlowError,
    InvalidFlowTypeError,
    MapError,
    MisplacedRetryError,
    MissingRequirementError,
    UnknownEngineError,
)
from flowkit.exceptions.inputs import (
    AmbiguousPrefixError,
    InvalidFormat,
    InvalidNameError,
    NotAFailureError,
    NotFound,
    NotifierRegistrationError,
    NotSerializableError,
)
from flowkit.exceptions.jobboard import (
    CancelRefused,
    ConductorError,
    JobBoardConnectionError,
    JobBoardError,
    JobSetAsideError,
    JobTooLargeError,
    MalformedJobError,
    NotOwnerError,
    UnclaimableJobError,
)
from flowkit.exceptions.running import (
    AtomTimeout,
    Cancelled,
    CoroutineResult,
    ExecutionError,
    InvalidStateError,
    WaitTimeout,
)
from flowkit.exceptions.storage import ClaimLost, CorruptRecordError, SchemaError, StorageError
from flowkit.exceptions.taskflow import (
    AmbiguousDependency,
    CompilationFailure,
    ConductorFailure,
    DependencyFailure,
    DisallowedAccess,
    Duplicate,
    Empty,
    ExecutionFailure,
    IncompatibleVersion,
    InvalidState,
    JobFailure,
    MissingDependencies,
    MultipleChoices,
    NotImplementedError,
    StorageFailure,
    TaskFlowException,
    UnclaimableJob,
    raise_with_cause,
)
from flowkit.exceptions.workers import InvalidMessageError, NoWorkerAvailable, RequestTimeout, WorkerError

__all__ = [
    "AmbiguousDependency",
    "AmbiguousPrefixError",
    "AmbiguousProviderError",
    "AtomTimeout",
    "CancelRefused",
    "Cancelled",
    "ClaimLost",
    "CompilationError",
    "CompilationFailure",
    "ConductorError",
    "ConductorFailure",
    "CoroutineResult",
    "CorruptRecordError",
    "CycleError",
    "DependencyFailure",
    "DisallowedAccess",
    "Duplicate",
    "DuplicateNameError",
    "Empty",
    "ExecutionError",
    "ExecutionFailure",
    "FactoryImportError",
    "FlowkitError",
    "IncompatibleVersion",
    "InvalidAtomArgumentError",
    "InvalidFlowError",
    "InvalidFlowTypeError",
    "InvalidFormat",
    "InvalidMessageError",
    "InvalidNameError",
    "InvalidState",
    "InvalidStateError",
    "JobBoardConnectionError",
    "JobBoardError",
    "JobFailure",
    "JobSetAsideError",
    "JobTooLargeError",
    "MalformedJobError",
    "MapError",
    "MisplacedRetryError",
    "MissingDependencies",
    "MissingExtraError",
    "MissingRequirementError",
    "MultipleChoices",
    "NoWorkerAvailable",
    "NotAFailureError",
    "NotFound",
    "NotImplementedError",
    "NotOwnerError",
    "NotSerializableError",
    "NotifierRegistrationError",
    "RemoteError",
    "RequestTimeout",
    "SchemaError",
    "StorageError",
    "StorageFailure",
    "TaskFlowException",
    "UnclaimableJob",
    "UnclaimableJobError",
    "UnknownBackendError",
    "UnknownEngineError",
    "WaitTimeout",
    "WorkerError",
    "WrappedFailure",
    "details_of",
    "raise_with_cause",
]

for _name in __all__:  # the aliases are the same classes: renamed once, under their own name
    _obj = globals()[_name]
    if _obj.__module__.startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
