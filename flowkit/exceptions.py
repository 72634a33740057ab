"""Every error flowkit raises itself, under one root: :class:`FlowkitError`.

Sub-roots group errors by the layer that raises them, so callers can catch
"anything wrong with my flow's shape" (:class:`CompilationError`) apart from
"the database went away" (:class:`StorageError`). Messages name the atoms,
symbols, jobs or URLs involved, because an error that says *what* is wrong but
not *where* costs an operator an afternoon.

All exceptions here survive pickling (they travel between processes in the
process executor and between machines as ``Failure`` dicts): each keeps its
constructor arguments in ``self.args`` so the default ``__reduce__`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowkit.failure import Failure


def _quote(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


class FlowkitError(Exception):
    """Root of every error flowkit raises itself."""


# -- bad input ------------------------------------------------------------------------------------


class InvalidNameError(FlowkitError, ValueError):
    """A name (of a job, logbook, flow or atom) that some store flowkit writes to cannot hold as given.

    Too long for a job board, or with a NUL character or a lone surrogate, which PostgreSQL and
    UTF-8 refuse. Also a ``ValueError``: it is a bad value, refused before anything is saved.
    """

    def __init__(self, what: str, name: object, reason: str) -> None:
        super().__init__(what, name, reason)
        self.what = what
        self.name = name
        self.reason = reason

    def __str__(self) -> str:
        shown = repr(self.name)
        if len(shown) > 80:
            shown = f"{shown[:60]}...{shown[-12:]}"
        return f"{self.what} {shown} {self.reason}"


# -- flow structure -----------------------------------------------------------------------------


class CompilationError(FlowkitError):
    """The flow cannot be turned into a runnable graph; raised before any task runs."""


class DuplicateNameError(CompilationError):
    """Two atoms (or flows) in one flow share a name."""

    def __init__(self, name: str, where: str = "") -> None:
        super().__init__(name, where)
        self.name = name
        self.where = where

    def __str__(self) -> str:
        suffix = f" in {self.where}" if self.where else ""
        return f"duplicate name {self.name!r}{suffix}: atom and flow names must be unique within a flow"


class CycleError(CompilationError):
    """The dependencies of the flow form a cycle; ``cycle`` lists the atoms on it in order."""

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(list(cycle))
        self.cycle = list(cycle)

    def __str__(self) -> str:
        path = " -> ".join(repr(n) for n in [*self.cycle, self.cycle[0]]) if self.cycle else "?"
        return f"dependency cycle between atoms: {path}"


class MissingRequirementError(CompilationError):
    """An atom requires a symbol that nothing before it provides and the store does not hold."""

    def __init__(self, atom: str, symbol: str, not_before: Sequence[str] = ()) -> None:
        super().__init__(atom, symbol, list(not_before))
        self.atom = atom
        self.symbol = symbol
        self.not_before = list(not_before)

    def __str__(self) -> str:
        text = (
            f"atom {self.atom!r} requires {self.symbol!r}, which no atom that runs before it "
            f"provides and the store does not contain"
        )
        if self.not_before:
            text += f" (provided by {_quote(self.not_before)}, which do not run before {self.atom!r})"
        return text


class AmbiguousProviderError(CompilationError):
    """Several atoms could provide one symbol to an atom, and none of them is the nearest."""

    def __init__(self, atom: str, symbol: str, providers: Sequence[str]) -> None:
        super().__init__(atom, symbol, list(providers))
        self.atom = atom
        self.symbol = symbol
        self.providers = list(providers)

    def __str__(self) -> str:
        return (
            f"atom {self.atom!r} requires {self.symbol!r}, which is provided by several atoms that "
            f"run before it in no fixed order: {_quote(self.providers)}; rename one of the outputs "
            f"or use rebind"
        )


class InvalidFlowError(CompilationError, ValueError):
    """A flow, atom or link was declared wrongly (bad argument, unknown node, bad decider depth...).
    Also a ValueError, as TaskFlow raises for the same mistakes."""


class NotSerializableError(FlowkitError):
    """An atom or value cannot be pickled (process executor) or stored (persistence)."""

    def __init__(self, atom: str, what: str, reason: str) -> None:
        super().__init__(atom, what, reason)
        self.atom = atom
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what} of atom {self.atom!r} cannot be serialized: {self.reason}"


# -- running --------------------------------------------------------------------------------------


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


class NotFound(FlowkitError, KeyError):
    """A symbol, atom, logbook, flow detail or job that was asked for does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class WrappedFailure(FlowkitError):
    """Several failures at once (parallel atoms failing together, or a revert that failed too).

    Iterating yields each :class:`~flowkit.failure.Failure`.
    """

    def __init__(self, failures: Sequence[Failure]) -> None:
        super().__init__(list(failures))
        self.failures = list(failures)

    def __iter__(self) -> Iterator[Failure]:
        return iter(self.failures)

    def __len__(self) -> int:
        return len(self.failures)

    def check(self, *exc_types: type[BaseException] | str) -> Failure | None:
        """Return the first wrapped failure of one of ``exc_types``, or None."""
        for failure in self.failures:
            if failure.check(*exc_types):
                return failure
        return None

    def __str__(self) -> str:
        parts = []
        for f in self.failures:
            where = f" in {f.atom_name!r}" if getattr(f, "atom_name", None) else ""
            parts.append(f"{f.exception_str}{where}")
        return f"{len(self.failures)} failures: " + "; ".join(parts)


class RemoteError(FlowkitError):
    """A task failed in another process or machine with an exception that could not be rebuilt here."""

    def __init__(self, type_name: str, message: str, traceback_str: str = "") -> None:
        super().__init__(type_name, message, traceback_str)
        self.type_name = type_name
        self.message = message
        self.traceback_str = traceback_str

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


# -- persistence ----------------------------------------------------------------------------------


class StorageError(FlowkitError):
    """Persistence failed: the database is unreachable, a write was refused, or data is corrupt."""


class CorruptRecordError(StorageError):
    """A saved record cannot be read back (a value that is not JSON, an unknown state or kind).

    Not a passing fault like a database that went away: reading it again fails again, so a
    conductor sets its job aside at once and listings skip it.
    """


class SchemaError(StorageError):
    """The database schema is missing or older than this flowkit; run ``flowkit db upgrade URL``."""


class ClaimLost(StorageError):
    """A write of a flow was refused by the database: a newer claim on its job has taken the flow over.

    Every write of an engine loaded with a fencing token (``engines.load(..., fence=token)``, the
    token of a job board claim) is checked against the token saved in the flow's rows; a later
    claimant saves a higher one before its first write. The engine stops at once on this error
    (nothing is retried, nothing new starts) and a conductor drops the job: it is someone else's.
    ``newer`` is the token that won, when it could be read (None when the flow detail is gone).
    """

    def __init__(self, flow_name: str, flow_uuid: str, token: int, newer: int | None) -> None:
        super().__init__(flow_name, flow_uuid, token, newer)
        self.flow_name, self.flow_uuid, self.token, self.newer = flow_name, flow_uuid, token, newer

    def __str__(self) -> str:
        by = f"a newer claim (fence {self.newer})" if self.newer is not None else "a newer claim"
        return (
            f"flow detail {self.flow_name!r} ({self.flow_uuid}) was taken over by {by}: "
            f"writes with fence {self.token} are refused"
        )


# -- job boards -----------------------------------------------------------------------------------


class JobBoardError(FlowkitError):
    """Errors of job boards and the jobs on them."""


class UnclaimableJobError(JobBoardError):
    """A job cannot be claimed (another owner has it, or it is gone)."""


class NotOwnerError(JobBoardError):
    """Only the owner of a claim may consume, abandon or trash the job."""


class JobBoardConnectionError(JobBoardError):
    """The job board's service is unreachable, or the session to it was lost."""


class JobSetAsideError(UnclaimableJobError):
    """A claim found the job claimed too often without being consumed, and set it aside instead.

    The job stays off the board (with ``reason``) until an operator posts it again: a poison job
    must not cycle between conductors forever.
    """

    def __init__(self, job: str, reason: str) -> None:
        super().__init__(job, reason)
        self.job = job
        self.reason = reason

    def __str__(self) -> str:
        return f"job {self.job} was set aside: {self.reason}"


class MalformedJobError(JobBoardError, ValueError):
    """A stored job record is not a valid job; the board skips it with a warning naming where it is.

    Also a ``ValueError``: a record that does not parse is a bad value.
    """


class JobTooLargeError(JobBoardError, ValueError):
    """A job's record is larger than its board can store (ZooKeeper: about 1 MB per node).

    ``limit_of`` says whose limit it is (the board, and where its limit comes from).
    """

    def __init__(self, job: str, size: int, limit: int, limit_of: str) -> None:
        super().__init__(job, size, limit, limit_of)
        self.job = job
        self.size = size
        self.limit = limit
        self.limit_of = limit_of

    def __str__(self) -> str:
        return (
            f"job {self.job!r} is {self.size:,} bytes as stored, over the limit of {self.limit:,} bytes "
            f"of {self.limit_of}: keep large inputs out of the job's details and store (pass a "
            f"reference to them instead)"
        )


class ConductorError(FlowkitError):
    """A conductor cannot run as asked (an option out of range, a service that does not answer at start);
    the message names the conductor or the service. Not a :class:`JobBoardError`: the board may be fine."""


class UnknownBackendError(FlowkitError):
    """A URL names a backend that flowkit does not have."""

    def __init__(self, url: str, known: Sequence[str]) -> None:
        super().__init__(url, list(known))
        self.url = url
        self.known = list(known)

    def __str__(self) -> str:
        return f"no backend for {self.url!r}; known schemes: {', '.join(self.known)}"


class MissingExtraError(FlowkitError):
    """A feature needs an optional dependency that is not installed; the message names the pip extra."""

    def __init__(self, extra: str, module: str, needed_for: str) -> None:
        super().__init__(extra, module, needed_for)
        self.extra = extra
        self.module = module
        self.needed_for = needed_for

    def __str__(self) -> str:
        return (
            f"{self.needed_for} needs {self.module!r}, which is not installed: "
            f"pip install 'flowkit[{self.extra}]'"
        )


# -- workers --------------------------------------------------------------------------------------


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


def details_of(exc: BaseException) -> dict[str, Any]:
    """Structured fields of a flowkit error (for logs and JSON), empty for others."""
    return {k: v for k, v in vars(exc).items() if not k.startswith("_")}


# ----------------------------------------------------------------------------------------------------
# TaskFlow's exception names, for code moving from TaskFlow (see docs/migrating-from-taskflow.md).
# Each name is one of flowkit's own classes, so ``except exceptions.MissingDependencies`` catches what
# flowkit raises. Where TaskFlow has one name for a family that flowkit splits (DependencyFailure:
# cycles, missing and ambiguous dependencies), the name is flowkit's root of that family.
# ----------------------------------------------------------------------------------------------------


class InvalidFormat(FlowkitError, ValueError):
    """Data is not in the expected format: a failure dict read back, a backend's settings dict."""


class NotifierRegistrationError(FlowkitError, TypeError, ValueError):
    """A notifier callback cannot be registered: not callable, already registered, or an event the
    notifier does not offer. A ValueError as in TaskFlow, and a TypeError as flowkit raised before."""


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


class UnknownEngineError(InvalidFlowError, NotFound):
    """``engines.load(engine=...)`` names no engine kind; also :class:`NotFound`, as TaskFlow raises."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown engine"


class NotAFlowError(InvalidFlowError, TypeError):
    """Something that is neither a flow nor an atom was given to load or compile; also a TypeError,
    as TaskFlow raises."""


class FactoryImportError(InvalidFlowError, ImportError):
    """The factory a flow detail names cannot be imported; also an ImportError, as TaskFlow raises."""


class MisplacedRetryError(InvalidFlowError, TypeError):
    """A retry controller was added as a flow's child (or run alone) instead of given as ``retry=``;
    also a TypeError, as TaskFlow raises when it is run as a task."""


class InvalidAtomArgumentError(InvalidFlowError, ValueError):
    """An atom's constructor got an argument it cannot use (a functor that is not callable or takes
    the wrong number of arguments, too few ``requires``); a ValueError, as TaskFlow raises."""


# -- timeouts -------------------------------------------------------------------------------------


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
