"""Values flowkit is given that it cannot use: a name a store cannot hold, a lookup that finds
nothing or too much, data in the wrong format, a value that does not serialize.

Most are also a ``ValueError``, ``KeyError`` or ``TypeError``, as TaskFlow (or Python) raises for
the same mistake, so code that catches the builtin keeps working.
"""

from __future__ import annotations

from flowkit.exceptions.base import FlowkitError


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


class NotFound(FlowkitError, KeyError):
    """A symbol, atom, logbook, flow detail or job that was asked for does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


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


class InvalidFormat(FlowkitError, ValueError):
    """Data is not in the expected format: a failure dict read back, a backend's settings dict."""


class NotAFailureError(FlowkitError, TypeError):
    """``Failure()`` was given no exception, or one that is not a task's failure (SystemExit,
    KeyboardInterrupt, GeneratorExit); a TypeError, as TaskFlow raises."""


class NotifierRegistrationError(FlowkitError, TypeError, ValueError):
    """A notifier callback cannot be registered: not callable, already registered, or an event the
    notifier does not offer. A ValueError as in TaskFlow, and a TypeError as flowkit raised before."""


class NotSerializableError(FlowkitError):
    """An atom or value cannot be pickled (process executor) or stored (persistence)."""

    def __init__(self, atom: str, what: str, reason: str) -> None:
        super().__init__(atom, what, reason)
        self.atom = atom
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.what} of atom {self.atom!r} cannot be serialized: {self.reason}"
