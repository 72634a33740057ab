"""``Map``: one copy of a task or flow per item of a sequence, expanded when the flow runs.

A :class:`Map` is an atom of the flow it sits in. Its engine runs it in its own process (never on a
process pool or a remote worker) as a *child run*: :meth:`Map.expand` builds one flow of the items
(this module: naming and scoping, no engine), and :mod:`flowkit.engines.mapping` runs that flow
with the parent's engine kind and options, saved beside the parent (see that module for why).

How the items are laid out:

- item ``k`` is ``each(k, over[k])``; every atom and subflow in it is renamed ``"<map>[k].<name>"``;
- every symbol an item provides is renamed ``"<map>[k].<symbol>"``, and so are the arguments of the
  item's atoms bound to it: two items providing the same symbol never see each other's value;
- ``max_parallel`` items at most run at once: the items are dealt into that many *lanes*, each a
  linear chain, which holds on every engine (a lane runs one item at a time by construction, so
  no dispatcher needs to count anything).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flowkit.atom import Atom, Names
from flowkit.exceptions import MapError
from flowkit.flow import Flow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.patterns.unordered_flow import UnorderedFlow
from flowkit.retry import Retry
from flowkit.task import Task

EachFn = Callable[[int, Any], "Atom | Flow"]


class Expansion:
    """One expansion of a Map: the child flow, and each item's scoped ``result`` symbol."""

    __slots__ = ("flow", "results", "size")

    def __init__(self, flow: Flow, results: list[str] | None, size: int) -> None:
        self.flow = flow
        self.results = results
        """Per item, in item order, the symbol its ``result`` was renamed to (None without ``result``)."""
        self.size = size


class Map(Task):
    """Run ``each(index, item)`` for every item of the sequence ``over`` names (see the module docstring).

    ``over`` is the symbol holding the sequence (from the store or an atom before the Map);
    ``each(index, item)`` returns a new Task or Flow per call; ``result`` names the symbol each item
    provides; the Map provides (``provides=``) the list of those values, in item order;
    ``max_parallel`` bounds how many items run at once (None: no bound beyond the engine's own).
    """

    def __init__(
        self,
        name: str,
        over: str,
        each: EachFn,
        result: str | None = None,
        provides: str | None = None,
        max_parallel: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise MapError(repr(name), "a Map needs a non-empty str name")
        if not isinstance(over, str) or not over:
            raise MapError(name, f"over must name the symbol holding the items (a str), got {over!r}")
        if not callable(each):
            raise MapError(name, f"each must be callable as each(index, item), got {each!r}")
        if result is not None and (not isinstance(result, str) or not result):
            raise MapError(name, f"result must name a symbol each item provides (a str), got {result!r}")
        if provides is not None and result is None:
            raise MapError(name, "provides= collects each item's result: give result= too")
        if max_parallel is not None and (
            isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
        ):
            raise MapError(name, f"max_parallel must be an int of at least 1 (or None), got {max_parallel!r}")
        super().__init__(name=name, provides=provides, rebind={"over": over})
        self.over = over
        self.each: EachFn | None = each
        self.result = result
        self.max_parallel = max_parallel
        self.scope: dict[str, str] = {}
        """Symbols an enclosing Map item renamed (plain -> scoped): how this Map finds, in its parent
        run, the values its own items need from outside."""

    def execute(self, over: Any) -> Any:
        """Engines run a Map themselves (:mod:`flowkit.engines.mapping`); a direct call is a mistake."""
        raise MapError(self.name, "a Map runs only inside a flowkit engine (it was called directly)")

    def revert(self, over: Any = None, result: Any = None, flow_failures: Any = None) -> None:
        """Engines revert a Map's items themselves; see :meth:`execute`."""

    def __getstate__(self) -> dict[str, Any]:
        # A Map never leaves its engine's process, but the process engine checks that every task
        # pickles: ``each`` is often a closure, and is not needed anywhere else.
        state = dict(self.__dict__)
        state["each"] = None
        return state

    # -- expansion ---------------------------------------------------------------------------------

    def expand(self, over: Any) -> Expansion:
        """The child flow for ``over``: items dealt into ``max_parallel`` lanes, each named and scoped."""
        name = self.name
        if isinstance(over, str | bytes | bytearray) or not isinstance(over, Sequence):
            raise MapError(
                name, f"over ({self.over!r}) must be a sequence of items, got {type(over).__name__}"
            )
        each = self.each
        if each is None:
            raise MapError(
                name, "each was dropped when the Map was pickled; a Map runs in its engine's process"
            )
        size = len(over)
        lanes_n = min(self.max_parallel or size, size)
        root = UnorderedFlow(f"{name}[*]")
        lanes: list[Flow] = []
        if self.max_parallel is not None:
            lanes = [LinearFlow(f"{name}.lane{j}") for j in range(lanes_n)]
            root.add(*lanes)
        results: list[str] = []
        seen: set[int] = set()
        for k in range(size):
            node = each(k, over[k])
            renames = _scope_item(self, node, f"{name}[{k}]", seen, k)
            if self.result is not None:
                scoped = renames.get(self.result)
                if scoped is None:
                    raise MapError(name, f"item {k} provides no {self.result!r} (its result=)")
                results.append(scoped)
            if lanes:
                lanes[k % lanes_n].add(node)
            else:
                root.add(node)
        return Expansion(root, results if self.result is not None else None, size)


def _scope_item(m: Map, node: Any, prefix: str, seen: set[int], k: int) -> dict[str, str]:
    """Rename item ``k``'s atoms, subflows and provided symbols under ``prefix``; return the renames."""
    if isinstance(node, Retry) or not isinstance(node, Atom | Flow):
        raise MapError(m.name, f"each({k}, ...) must return a Task or a Flow, got {node!r}")
    atoms: list[Atom] = [node] if isinstance(node, Atom) else list(node.iter_atoms())
    renames: dict[str, str] = {}
    for atom in atoms:
        if id(atom) in seen:
            raise MapError(
                m.name, f"each({k}, ...) returned atom {atom.name!r} again: build new atoms per item"
            )
        seen.add(id(atom))
        for symbol in atom.save_as:
            renames[symbol] = f"{prefix}.{symbol}"
    for atom in atoms:
        atom.name = f"{prefix}.{atom.name}"
        atom.save_as = {renames[s]: key for s, key in atom.save_as.items()}
        atom.provides = Names(atom.save_as)
        atom.required_rebind = _renamed(atom.required_rebind, renames)
        atom.optional_rebind = _renamed(atom.optional_rebind, renames)
        atom.revert_required_rebind = _renamed(atom.revert_required_rebind, renames)
        atom.revert_optional_rebind = _renamed(atom.revert_optional_rebind, renames)
        if isinstance(atom, Map):
            atom.scope = {**m.scope, **renames}
    if isinstance(node, Flow):
        stack: list[Flow] = [node]
        while stack:
            flow = stack.pop()
            flow.name = f"{prefix}.{flow.name}"
            stack.extend(child for child in flow if isinstance(child, Flow))
    return renames


def _renamed(rebind: dict[str, str], renames: dict[str, str]) -> dict[str, str]:
    if not rebind:
        return rebind
    return {arg: renames.get(symbol, symbol) for arg, symbol in rebind.items()}
