"""``flowkit.utils.misc``: the conversion helper TaskFlow programs import from ``taskflow.utils.misc``."""

from __future__ import annotations

from typing import Any

__all__ = ["as_int"]


def as_int(obj: Any, quiet: bool = False) -> Any:
    """``obj`` as an ``int``: ``"2"`` and ``"2.5"`` both give 2.

    A value that is neither raises :class:`TypeError` naming it, or with ``quiet=True`` comes back
    unchanged (callers that accept "a number or anything else" use that).
    """
    for convert in (int, lambda value: int(float(value))):
        try:
            return convert(obj)
        except (ValueError, TypeError):
            continue
    if quiet:
        return obj
    raise TypeError(f"cannot convert {obj!r} ({type(obj).__name__}) to an integer")
