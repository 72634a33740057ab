"""``flowkit.tests.utils``: :func:`wrap_all_failures` and two small tasks, as TaskFlow programs use them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flowkit.exceptions import WrappedFailure
from flowkit.failure import Failure
from flowkit.task import Task

__all__ = ["TaskMultiArgOneReturn", "TaskOneArgOneReturn", "wrap_all_failures"]


@contextlib.contextmanager
def wrap_all_failures() -> Iterator[None]:
    """Raise every exception of the block as a :class:`WrappedFailure`, so one ``except`` handles both.

    An engine raises a task's own exception when one task failed and a ``WrappedFailure`` when
    several did; inside this block the caller always gets a ``WrappedFailure`` to iterate (one that
    is one already is raised as it is, not wrapped again).
    """
    try:
        yield
    except WrappedFailure:
        raise
    except Exception as exc:
        raise WrappedFailure([Failure.from_exception(exc)]) from exc


class TaskOneArgOneReturn(Task):
    """Takes ``x``, returns 1 (a task whose result does not depend on its input)."""

    def execute(self, x: Any, **kwargs: Any) -> int:
        return 1

    def revert(self, x: Any, **kwargs: Any) -> None:
        return None


class TaskMultiArgOneReturn(Task):
    """Takes ``x``, ``y`` and ``z``, returns their sum."""

    def execute(self, x: Any, y: Any, z: Any, **kwargs: Any) -> Any:
        return x + y + z

    def revert(self, x: Any, y: Any, z: Any, **kwargs: Any) -> None:
        return None
