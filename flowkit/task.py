"""Tasks: atoms that do work (``execute``) and can undo it (``revert``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowkit import context
from flowkit.atom import Atom, ProvidesSpec, RebindSpec, class_name
from flowkit.exceptions import InvalidFlowError
from flowkit.notifier import EVENT_UPDATE_PROGRESS


class Task(Atom):
    """A unit of work with an optional undo.

    Subclass and implement ``execute(**args)``; implement ``revert(**args, result,
    flow_failures)`` when the work leaves something behind that a failure later in the
    flow must clean up. ``result`` is what ``execute`` returned, or a
    :class:`~flowkit.failure.Failure` if ``execute`` itself failed.
    """

    def __init__(
        self,
        name: str | None = None,
        provides: ProvidesSpec = None,
        requires: Iterable[str] | None = None,
        rebind: RebindSpec = None,
        inject: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(
            name=name, provides=provides, requires=requires, rebind=rebind, inject=inject, timeout=timeout
        )

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"task {self.name!r} must implement execute()")

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        """Undo ``execute``. The default does nothing: override it when there is something to undo."""
        return None

    def update_progress(self, progress: float) -> None:
        """Report how far ``execute`` has got, from 0.0 to 1.0 (clamped); listeners receive it."""
        progress = min(1.0, max(0.0, float(progress)))
        ctx = context.current()
        if ctx is not None and ctx.progress is not None:
            ctx.progress(ctx.atom_name, progress)

    # ``EVENT_UPDATE_PROGRESS`` re-exported for TaskFlow-style ``task.EVENT_UPDATE_PROGRESS``
    EVENT_UPDATE_PROGRESS = EVENT_UPDATE_PROGRESS


class FunctorTask(Task):
    """A task made from a plain function (and optionally a revert function)."""

    def __init__(
        self,
        execute: Callable[..., Any],
        name: str | None = None,
        provides: ProvidesSpec = None,
        requires: Iterable[str] | None = None,
        rebind: RebindSpec = None,
        inject: Mapping[str, Any] | None = None,
        revert: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        if not callable(execute):
            raise InvalidFlowError(f"FunctorTask needs a callable, got {execute!r}")
        if revert is not None and not callable(revert):
            raise InvalidFlowError(f"FunctorTask revert must be callable, got {revert!r}")
        self._execute_fn = execute
        self._revert_fn = revert
        super().__init__(
            name=name if name is not None else class_name(execute),
            provides=provides,
            requires=requires,
            rebind=rebind,
            inject=inject,
            timeout=timeout,
        )

    def _execute_callable(self) -> Callable[..., Any]:
        return self._execute_fn

    def _revert_callable(self) -> Callable[..., Any]:
        return self._revert_fn if self._revert_fn is not None else _no_revert

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._execute_fn(*args, **kwargs)

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        if self._revert_fn is None:
            return None
        return self._revert_fn(*args, **kwargs)


def _no_revert(**kwargs: Any) -> None:
    return None
