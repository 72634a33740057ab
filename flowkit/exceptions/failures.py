"""Task failures raised as one exception: several at once (:class:`WrappedFailure`), or one whose
exception could not be rebuilt in this process (:class:`RemoteError`).

Both hold :class:`~flowkit.failure.Failure` objects, which this module knows by type only: the
failure module imports the exceptions, never the other way round at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from flowkit.exceptions.base import FlowkitError

if TYPE_CHECKING:
    from flowkit.failure import Failure


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
