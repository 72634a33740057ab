"""The root of the hierarchy, :class:`FlowkitError`, and the helpers every part of it shares.

TaskFlow's error chaining (``cause=``, ``err.cause``, ``pformat``) lives here, on the root, so that
every flowkit error chains the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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


def details_of(exc: BaseException) -> dict[str, Any]:
    """Structured fields of a flowkit error (for logs and JSON), empty for others."""
    return {k: v for k, v in vars(exc).items() if not k.startswith("_")}
