"""Errors in what a user declared: a flow that cannot be compiled (:class:`CompilationError`) and an
atom, link, engine, factory or Map declared wrongly (:class:`InvalidFlowError`).

All are raised before any task runs, and their messages name the atoms and symbols involved.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowkit.exceptions.base import FlowkitError, _quote
from flowkit.exceptions.inputs import NotFound


class CompilationError(FlowkitError):
    """The flow cannot be turned into a runnable graph; raised before any task runs."""


class DuplicateNameError(CompilationError):
    """Two atoms (or flows) in one flow share a name."""

    def __init__(self, name: str, where: str = "") -> None:
        super().__init__(name, where)
        self.name = name
        self.where = where

    def __str__(self) -> str:
        suffix = f" in {self.where}" if self.where else ""
        return f"duplicate name {self.name!r}{suffix}: atom and flow names must be unique within a flow"


class CycleError(CompilationError):
    """The dependencies of the flow form a cycle; ``cycle`` lists the atoms on it in order.

    The message starts as TaskFlow's does ("No path through the items in the graph produces an
    ordering") and then names the atoms on the cycle."""

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(list(cycle))
        self.cycle = list(cycle)

    def __str__(self) -> str:
        path = " -> ".join(repr(n) for n in [*self.cycle, self.cycle[0]]) if self.cycle else "?"
        return (
            "No path through the items in the graph produces an ordering that will allow for "
            f"logical completion: dependency cycle between atoms: {path}"
        )


class MissingRequirementError(CompilationError):
    """An atom requires a symbol that nothing before it provides and the store does not hold."""

    def __init__(
        self,
        atom: str,
        symbol: str,
        not_before: Sequence[str] = (),
        cause: MissingRequirementError | None = None,
    ) -> None:
        super().__init__(atom, symbol, list(not_before), cause)
        self.atom = atom
        self.symbol = symbol
        self.not_before = list(not_before)
        self._next = cause
        if cause is not None:
            self._cause = cause

    @property
    def missing_requirements(self) -> list[str]:
        """Every symbol missing, this one first, then those of the errors chained as ``cause``
        (TaskFlow's attribute of the same name)."""
        out: list[str] = []
        err: MissingRequirementError | None = self
        while err is not None:
            if err.symbol not in out:
                out.append(err.symbol)
            err = err._next
        return out

    def __str__(self) -> str:
        text = (
            f"atom {self.atom!r} requires {self.symbol!r}, which no atom that runs before it "
            f"provides and the store does not contain"
        )
        if self.not_before:
            text += f" (provided by {_quote(self.not_before)}, which do not run before {self.atom!r})"
        return text


class AmbiguousProviderError(CompilationError):
    """Several atoms could provide one symbol to an atom, and none of them is the nearest."""

    def __init__(self, atom: str, symbol: str, providers: Sequence[str]) -> None:
        super().__init__(atom, symbol, list(providers))
        self.atom = atom
        self.symbol = symbol
        self.providers = list(providers)

    def __str__(self) -> str:
        return (
            f"atom {self.atom!r} requires {self.symbol!r}, which is provided by several atoms that "
            f"run before it in no fixed order: {_quote(self.providers)}; rename one of the outputs "
            f"or use rebind"
        )


class InvalidFlowError(CompilationError, ValueError):
    """A flow, atom or link was declared wrongly (bad argument, unknown node, bad decider depth...).
    Also a ValueError, as TaskFlow raises for the same mistakes."""


class InvalidFlowTypeError(InvalidFlowError, TypeError):
    """An atom's declaration has the wrong type (``provides=object()``, a ``rebind`` that is neither a
    dict nor a list); also a TypeError, as TaskFlow raises for these."""


class UnknownEngineError(InvalidFlowError, NotFound):
    """``engines.load(engine=...)`` names no engine flowkit has; also TaskFlow's ``NotFound``."""


class FactoryImportError(InvalidFlowError, ImportError):
    """The factory a flow detail names cannot be imported; also an ImportError, as TaskFlow raises."""


class MisplacedRetryError(InvalidFlowError, TypeError):
    """A retry controller was added as a flow's child (or run alone) instead of given as ``retry=``;
    also a TypeError, as TaskFlow raises when it is run as a task."""


class InvalidAtomArgumentError(InvalidFlowError, ValueError):
    """An atom's constructor got an argument it cannot use (a functor that is not callable or takes
    the wrong number of arguments, too few ``requires``); a ValueError, as TaskFlow raises."""


class MapError(InvalidFlowError):
    """A :class:`flowkit.Map` was declared or expanded wrongly: ``over`` is not a sequence, ``each``
    is not callable or built something that is not an atom or a flow, ``max_parallel`` is below 1,
    an item does not provide ``result``, or a resumed expansion no longer matches ``over``."""

    def __init__(self, map_name: str, problem: str) -> None:
        super().__init__(map_name, problem)
        self.map_name = map_name
        self.problem = problem

    def __str__(self) -> str:
        return f"Map {self.map_name!r}: {self.problem}"
