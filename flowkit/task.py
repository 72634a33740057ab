"""Tasks: atoms that do work (``execute``) and can undo it (``revert``)."""

from __future__ import annotations

import copy as _copy
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

from flowkit import context
from flowkit.atom import NO_ARGS, Arguments, Atom, ProvidesSpec, RebindSpec, class_name, rebind_pairs
from flowkit.exceptions import InvalidAtomArgumentError
from flowkit.notifier import EVENT_UPDATE_PROGRESS, Notifier

LOG = logging.getLogger(__name__)


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
        revert_rebind: RebindSpec = None,
        revert_requires: Iterable[str] | None = None,
        timeout: float | None = None,
        auto_extract: bool = True,
    ) -> None:
        if isinstance(requires, str):
            requires = (requires,)
        super().__init__(
            name=name, provides=provides, requires=requires, rebind=rebind, inject=inject, timeout=timeout
        )
        if not auto_extract:
            self._bind_only_explicit(requires, rebind)
        if revert_rebind is not None or revert_requires is not None:
            self._bind_revert_apart(revert_rebind, revert_requires)

    def _bind_only_explicit(self, requires: Iterable[str] | None, rebind: RebindSpec) -> None:
        """TaskFlow's ``auto_extract=False``: ``execute``'s parameters are bound only when ``requires``
        or ``rebind`` names them; a required parameter left unnamed is a declaration error (it would
        otherwise fail at every run)."""
        args = Arguments(self._execute_callable(), skip=self._special_args)
        named = set(requires or ())
        if isinstance(rebind, Mapping):
            named.update(rebind)
        elif rebind is not None:
            named.update(args.positional[: len(list(rebind))])
        missing = [p for p in args.required if p not in named and p not in self.inject_kwargs]
        if missing:
            raise InvalidAtomArgumentError(
                f"Missing arguments {missing} of task {self.name!r}: with auto_extract=False only the "
                f"parameters named in requires or rebind are bound"
            )
        self.optional_rebind = {a: s for a, s in self.optional_rebind.items() if a in named}

    def _bind_revert_apart(self, revert_rebind: RebindSpec, revert_requires: Iterable[str] | None) -> None:
        """TaskFlow's ``revert_rebind``/``revert_requires``: ``revert`` takes its own symbols instead
        of the ones its parameters share with ``execute`` (the default)."""
        args = Arguments(self._revert_callable(), skip=self._revert_special_args)
        items: list[tuple[str, Any]] = []
        if revert_rebind is not None:
            items = rebind_pairs(
                revert_rebind,
                args,
                "revert",
                lambda m: InvalidAtomArgumentError(f"{m} (task {self.name!r}, revert_rebind)"),
            )
        if isinstance(revert_requires, str):  # one symbol, not its characters
            revert_requires = (revert_requires,)
        items += [(symbol, symbol) for symbol in revert_requires or ()]
        # the atom's own dicts to change (an empty one is the shared read-only mapping: see NO_ARGS)
        injected, required = dict(self.revert_inject_kwargs), dict(self.revert_required_rebind)
        optional = dict(self.revert_optional_rebind)
        for arg, symbol in items:
            if not isinstance(symbol, str):
                raise InvalidAtomArgumentError(
                    f"task {self.name!r}: revert symbol must be a str, got {symbol!r}"
                )
            if arg not in args.required and arg not in args.optional and not args.takes_kwargs:
                raise InvalidAtomArgumentError(
                    f"task {self.name!r}: revert does not take an argument {arg!r} "
                    f"(it takes {', '.join(args.positional) or 'no arguments'})"
                )
            injected.pop(arg, None)
            required.pop(arg, None)
            optional.pop(arg, None)
            if arg in args.optional:
                optional[arg] = symbol
            else:
                required[arg] = symbol
        # what ends up empty goes back to the shared mapping: a task keeps no empty dict of its own
        self.revert_inject_kwargs = injected or NO_ARGS
        self.revert_required_rebind = required or NO_ARGS
        self.revert_optional_rebind = optional or NO_ARGS

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"task {self.name!r} must implement execute()")

    def revert(self, *args: Any, **kwargs: Any) -> Any:
        """Undo ``execute``. The default does nothing: override it when there is something to undo."""
        return None

    notifiers_made: ClassVar[bool] = False
    """Whether any task of this process has made its :attr:`notifier` (a copy keeps its original's): until
    one has, the engine need not look for tasks whose notifier listens (a pass over every atom per run)."""

    @property
    def notifier(self) -> Notifier:
        """This task's own notifier (TaskFlow's ``Task.notifier``): ``update_progress`` sends
        :data:`EVENT_UPDATE_PROGRESS` with ``{"progress": p}`` to it, in the process running the task.

        Made on first use; it is not pickled with the task (a process or remote worker gets none).
        """
        notifier = self.__dict__.get("_notifier")
        if notifier is None:
            notifier = self.__dict__["_notifier"] = _TaskNotifier()
            if not Task.notifiers_made:
                Task.notifiers_made = True
        return notifier

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_notifier", None)  # callbacks are local to this process (and rarely pickle)
        return state

    def copy(self, retain_listeners: bool = True) -> Self:
        """A shallow copy; its notifier has this one's callbacks when ``retain_listeners``, else none."""
        clone = _copy.copy(self)
        notifier = self.__dict__.get("_notifier")
        clone.__dict__.pop("_notifier", None)
        if retain_listeners and notifier is not None:
            clone.__dict__["_notifier"] = notifier.copy()
        return clone

    def update_progress(self, progress: float) -> None:
        """Report how far ``execute`` has got, from 0.0 to 1.0 (clamped, with a warning); listeners
        and this task's :attr:`notifier` receive it."""
        progress = float(progress)
        if progress < 0.0 or progress > 1.0:
            LOG.warning("task %r: progress %s out of [0.0, 1.0], clamped", self.name, progress)
            progress = min(1.0, max(0.0, progress))
        ctx = context.current()
        if ctx is not None and ctx.progress is not None:
            ctx.progress(ctx.atom_name, progress)
        notifier = self.__dict__.get("_notifier")
        if notifier is not None and notifier.active:
            Notifier.notify(notifier, EVENT_UPDATE_PROGRESS, {"progress": progress})

    # ``EVENT_UPDATE_PROGRESS`` re-exported for TaskFlow-style ``task.EVENT_UPDATE_PROGRESS``
    EVENT_UPDATE_PROGRESS = EVENT_UPDATE_PROGRESS


class _TaskNotifier(Notifier):
    """A task's notifier: progress a task sends to it directly (``self.notifier.notify(
    EVENT_UPDATE_PROGRESS, {"progress": p, ...})``, as TaskFlow tasks may) also reaches the engine
    running the task, details included, as ``update_progress`` does."""

    __slots__ = ()

    def notify(self, event: Any, details: Mapping[str, Any]) -> None:
        if event == EVENT_UPDATE_PROGRESS and "progress" in details:
            ctx = context.current()
            if ctx is not None:
                progress = float(details["progress"])
                extra = {k: v for k, v in details.items() if k != "progress"}
                if extra and ctx.progress_details is not None:
                    ctx.progress_details(ctx.atom_name, progress, extra)
                elif ctx.progress is not None:
                    ctx.progress(ctx.atom_name, progress)
        super().notify(event, details)


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
        version: tuple[int, ...] | None = None,
        timeout: float | None = None,
    ) -> None:
        if not callable(execute):
            raise InvalidAtomArgumentError(f"FunctorTask needs a callable, got {execute!r}")
        if revert is not None and not callable(revert):
            raise InvalidAtomArgumentError(f"FunctorTask revert must be callable, got {revert!r}")
        self._execute_fn = execute
        self._revert_fn = revert
        if version is not None:
            self.version = tuple(version)
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


def _positional_count(functor: Callable[..., Any]) -> int:
    """How many positional arguments ``functor`` takes (``-1`` for ``*args``)."""
    try:
        params = inspect.signature(functor).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = [p.kind for p in params]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return -1
    return sum(
        k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds
    )


def _symbols(kind: str, requires: Iterable[str], at_least: int) -> list[str]:
    if isinstance(requires, str) or not isinstance(requires, Iterable):
        raise TypeError(f"{kind} requires must be a list of symbols, got {requires!r}")
    names = list(requires)
    if len(names) < at_least:
        raise InvalidAtomArgumentError(f"{kind} needs at least {at_least} required symbol(s), got {names!r}")
    return names


class _CollectionFunctorTask(Task):
    """A task applying one function to the values of its ``requires``, in their order."""

    _kind = "task"
    _functor_args = 1
    _min_requires = 1

    def __init__(
        self,
        functor: Callable[..., Any],
        requires: Iterable[str],
        name: str | None = None,
        provides: ProvidesSpec = None,
        auto_extract: bool = True,
        rebind: RebindSpec = None,
        inject: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(functor):
            raise InvalidAtomArgumentError(f"{self._kind} needs a callable, got {functor!r}")
        takes = _positional_count(functor)
        if takes != -1 and takes != self._functor_args:
            raise InvalidAtomArgumentError(
                f"{self._kind} functor must take {self._functor_args} argument(s), {functor!r} takes {takes}"
            )
        self._functor = functor
        self._order = _symbols(self._kind, requires, self._min_requires)
        super().__init__(
            name=name if name is not None else class_name(functor),
            provides=provides,
            requires=self._order,
            rebind=rebind,
            inject=inject,
        )

    def _values(self, kwargs: Mapping[str, Any]) -> list[Any]:
        return [kwargs[symbol] for symbol in self._order]


class MapFunctorTask(_CollectionFunctorTask):
    """``[functor(value) for each required symbol's value]``, in ``requires`` order (TaskFlow's)."""

    _kind = "MapFunctorTask"

    def execute(self, **kwargs: Any) -> list[Any]:
        return [self._functor(value) for value in self._values(kwargs)]


class ReduceFunctorTask(_CollectionFunctorTask):
    """``functools.reduce(functor, values of the required symbols)``; needs two or more (TaskFlow's)."""

    _kind = "ReduceFunctorTask"
    _functor_args = 2
    _min_requires = 2

    def execute(self, **kwargs: Any) -> Any:
        return functools.reduce(self._functor, self._values(kwargs))
