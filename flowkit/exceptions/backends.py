"""What is not there to use: a URL that names no backend, an optional dependency not installed.

The messages say what there is instead (the known schemes) or what to install (the pip extra).
"""

from __future__ import annotations

from collections.abc import Sequence

from flowkit.exceptions.base import FlowkitError


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
