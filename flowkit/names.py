"""What a name may be: one that every store flowkit writes to takes as given.

Names of jobs, logbooks, flows and atoms go into database columns and board records as they are.
PostgreSQL refuses a NUL character in text and UTF-8 cannot encode a lone surrogate, so such a name
would fail deep inside a driver, half way through a save; job boards keep job names in 255
characters. Names are checked where they enter instead, with an error that says which name and why.
"""

from __future__ import annotations

from flowkit.exceptions import InvalidNameError

MAX_JOB_NAME = 255
"""Longest job name, in characters, on every board (the SQL boards' column holds 255)."""

__all__ = ["MAX_JOB_NAME", "check_name"]


def check_name(name: object, what: str, *, max_length: int | None = None, empty: bool = True) -> str:
    """``name`` if it can be stored; :class:`InvalidNameError` naming ``what`` (``"job name"``) if not.

    Cheap for the usual ASCII name: it is on the path of every atom detail made.
    """
    if not isinstance(name, str):
        raise InvalidNameError(what, name, f"must be a string, not {type(name).__name__}")
    if not name and not empty:
        raise InvalidNameError(what, name, "must not be empty")
    if max_length is not None and len(name) > max_length:
        raise InvalidNameError(what, name, f"is {len(name)} characters long, over the limit of {max_length}")
    if "\x00" in name:
        raise InvalidNameError(what, name, f"contains a NUL character (at {name.index(chr(0))})")
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidNameError(
                what, name, f"contains a lone surrogate (at {exc.start}), which UTF-8 cannot encode"
            ) from None
    return name
