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

import builtins
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from flowkit.failure import Failure


def _quote(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


class FlowkitError(Exception):
    """Root of every error flowkit raises itself.

    ``cause=`` (TaskFlow's keyword) records the error this one is raised because of; with it,
    ``str()`` shows the whole chain as :meth:`pformat` does.
    """

    def __init__(self, *args: Any, cause: BaseException | None = None) -> None:
        super().__init__(*args)
        if cause is not None:
            self._cause = cause

    def __str__(self) -> str:
        if self.__dict__.get("_cause") is not None and type(self).__str__ is FlowkitError.__str__:
            return self.pformat()
        return super().__str__()

    def pformat(self, indent: int = 2, indent_text: str = " ", show_root_class: bool = False) -> str:
        """The message, then each ``cause`` one indent deeper (TaskFlow's ``pformat``)."""
        from flowkit.exception_chain import format_chain  # only when asked: most errors never are

        return format_chain(self, indent, indent_text, show_root_class)

    @property
    def cause(self) -> BaseException | None:
        """The error this one was raised because of (TaskFlow's ``cause``): one given explicitly
        (as :class:`MissingRequirementError` does to chain the next missing requirement), else the
        ``raise ... from`` cause."""
        explicit = self.__dict__.get("_cause")
        return explicit if explicit is not None else self.__cause__


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
    """The dependencies of the flow form a cycle; ``cycle`` lists the atoms on it in order.

    The message starts as TaskFlow's does ("No path through the items in the graph produces an
    ordering") and then names the atoms on the cycle."""

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(list(cycle))
        self.cycle = list(cycle)

    def __str__(self) -> str:
        path = " -> ".join(repr(n) for n in [*self.cycle, self.cycle[0]]) if self.cycle else "?"
        return (
            "No path through the items in the graph produces an ordering that will allow for "
            f"logical completion: dependency cycle between atoms: {path}"
        )


class MissingRequirementError(CompilationError):
    """An atom requires a symbol that nothing before it provides and the store does not hold."""

    def __init__(
        self,
        atom: str,
        symbol: str,
        not_before: Sequence[str] = (),
        cause: MissingRequirementError | None = None,
    ) -> None:
        super().__init__(atom, symbol, list(not_before), cause)
        self.atom = atom
        self.symbol = symbol
        self.not_before = list(not_before)
        self._next = cause
        if cause is not None:
            self._cause = cause

    @property
    def missing_requirements(self) -> list[str]:
        """Every symbol missing, this one first, then those of the errors chained as ``cause``
        (TaskFlow's attribute of the same name)."""
        out: list[str] = []
        err: MissingRequirementError | None = self
        while err is not None:
            if err.symbol not in out:
                out.append(err.symbol)
            err = err._next
        return out

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


class InvalidFlowTypeError(InvalidFlowError, TypeError):
    """An atom's declaration has the wrong type (``provides=object()``, a ``rebind`` that is neither a
    dict nor a list); also a TypeError, as TaskFlow raises for these."""


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


class NotFound(FlowkitError, KeyError):
    """A symbol, atom, logbook, flow detail or job that was asked for does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def _flatten(failures: Iterable[Failure]) -> list[Failure]:
    """The failures, with each one that captured a WrappedFailure replaced by the failures it holds,
    so that a revert failing inside a flow that failed is one list, not nested wrappers."""
    out: list[Failure] = []
    for failure in failures:
        inner = failure.exception
        if isinstance(inner, WrappedFailure) and not isinstance(inner, RemoteError) and inner.failures:
            out.extend(inner.failures)
        else:
            out.append(failure)
    return out


class AmbiguousPrefixError(FlowkitError, ValueError):
    """A uuid prefix matches more than one job or flow detail; the message lists the candidates."""

    def __init__(self, what: str, prefix: str, matches: list[str]) -> None:
        super().__init__(what, prefix, matches)
        self.what, self.prefix, self.matches = what, prefix, matches

    def __str__(self) -> str:
        shown = ", ".join(self.matches[:5]) + (" ..." if len(self.matches) > 5 else "")
        return (
            f"{self.what} prefix {self.prefix!r} matches {len(self.matches)}: {shown}; give more characters"
        )


class WrappedFailure(FlowkitError):
    """Several failures at once (parallel atoms failing together, or a revert that failed too).

    Iterating yields each :class:`~flowkit.failure.Failure`; a failure that itself captured a
    WrappedFailure is replaced by the failures that one held (one flat list, as in TaskFlow).
    """

    def __init__(self, failures: Iterable[Failure]) -> None:
        flat = _flatten(failures)
        super().__init__(flat)
        self.failures = flat

    def __iter__(self) -> Iterator[Failure]:
        return iter(self.failures)

    def __len__(self) -> int:
        return len(self.failures)

    def check(self, *exc_types: type[BaseException] | str) -> type[BaseException] | str | None:
        """The first of ``exc_types`` that one of the wrapped failures is an instance of, else None
        (as ``Failure.check``; iterate to get the failure itself)."""
        for failure in self.failures:
            found = failure.check(*exc_types)
            if found is not None:
                return found
        return None

    def __str__(self) -> str:
        """``WrappedFailure: [Failure: RuntimeError: boom (atom 'a'), ...]``: TaskFlow's form, with
        the atom that failed named when the engine recorded it."""
        parts = []
        for f in self.failures:
            where = f" (atom {f.atom_name!r})" if getattr(f, "atom_name", None) else ""
            parts.append(f"{f}{where}")
        return f"WrappedFailure: [{', '.join(parts)}]"


class RemoteError(WrappedFailure):
    """A task failed in another process or machine with an exception that could not be rebuilt here.

    A :class:`WrappedFailure` of that one failure (when it is known), as TaskFlow re-raises a failure
    without its exception; ``type_name``, ``message`` and ``traceback_str`` give its facts.
    """

    def __init__(
        self, type_name: str, message: str, traceback_str: str = "", failure: Failure | None = None
    ) -> None:
        FlowkitError.__init__(self, type_name, message, traceback_str, failure)
        self.failures = [failure] if failure is not None else []
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


class CancelRefused(JobBoardError):
    """A cancel asked for a job that is over (consumed, trashed, set aside, cancelled): nothing is left
    to cancel; the message says which state the job is in (``flowkit serve`` answers 409)."""


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


def raise_with_cause(exc_cls: type[FlowkitError], message: str, *args: Any, **kwargs: Any) -> NoReturn:
    """Raise ``exc_cls(message, ...)`` caused by ``cause=`` or, without it, by the exception being
    handled now (TaskFlow's helper): both ``err.cause`` and ``err.__cause__`` are set."""
    if not (isinstance(exc_cls, type) and issubclass(exc_cls, FlowkitError)):
        raise InvalidFlowError(f"raise_with_cause needs a flowkit error class, got {exc_cls!r}")
    cause = kwargs.pop("cause", None)
    if cause is None:
        cause = sys.exception()
    raise exc_cls(message, *args, cause=cause, **kwargs) from cause


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


class NotAFailureError(FlowkitError, TypeError):
    """``Failure()`` was given no exception, or one that is not a task's failure (SystemExit,
    KeyboardInterrupt, GeneratorExit); a TypeError, as TaskFlow raises."""


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


class UnknownEngineError(InvalidFlowError, NotFound):
    """``engines.load(engine=...)`` names no engine flowkit has; also TaskFlow's ``NotFound``."""


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


# -- fan-out --------------------------------------------------------------------------------------


class MapError(InvalidFlowError):
    """A :class:`flowkit.Map` was declared or expanded wrongly: ``over`` is not a sequence, ``each``
    is not callable or built something that is not an atom or a flow, ``max_parallel`` is below 1,
    an item does not provide ``result``, or a resumed expansion no longer matches ``over``."""

    def __init__(self, map_name: str, problem: str) -> None:
        super().__init__(map_name, problem)
        self.map_name = map_name
        self.problem = problem

    def __str__(self) -> str:
        return f"Map {self.map_name!r}: {self.problem}"
