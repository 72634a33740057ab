"""An error with the errors it was raised because of, as readable text (TaskFlow's ``pformat``).

Python chains exceptions itself (``raise ... from``); TaskFlow code also passes ``cause=`` and reads
``err.cause`` and ``err.pformat()``. This module formats such a chain; :class:`flowkit.exceptions.
FlowkitError` offers it as ``pformat()``.
"""

from __future__ import annotations

import traceback
from typing import Any


def _message(exc: BaseException) -> str:
    args = exc.args
    return str(args[0]) if len(args) == 1 else str(exc)


def format_chain(
    exc: BaseException, indent: int = 2, indent_text: str = " ", show_root_class: bool = False
) -> str:
    """``exc``'s message, then each cause on its own line, indented one step deeper than the one it
    caused; a cause that is not a flowkit error ends the chain (shown as ``Type: message``). A chain
    that loops is shown once around."""
    if indent < 0:
        raise ValueError(f"indent must be 0 or more, got {indent}")
    lines = [f"{type(exc).__name__}: {_message(exc)}" if show_root_class else _message(exc)]
    depth = indent
    seen: list[Any] = [exc]
    nxt = getattr(exc, "cause", None)
    while nxt is not None and not any(nxt is s for s in seen):
        seen.append(nxt)
        pad = indent_text * depth
        if hasattr(nxt, "pformat"):
            lines.append(f"{pad}{type(nxt).__name__}: {_message(nxt)}")
        else:
            only = traceback.format_exception_only(type(nxt), nxt)
            lines.extend(pad + line.rstrip("\n") for line in only)
            break
        depth += indent
        nxt = getattr(nxt, "cause", None)
    return "\n".join(lines)
