"""The compiled form of a flow: plain integer-indexed lists the engine's hot loop reads.

Node ids index every list. Ids are handed out depth first, so every (sub)flow owns a
contiguous id range; retry scopes and decider reaches are ranges, not sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from flowkit.atom import _WHOLE, Atom
from flowkit.exceptions import ExecutionError, MissingRequirementError
from flowkit.flow import Flow
from flowkit.patterns.graph_flow import Depth
from flowkit.retry import Retry

if TYPE_CHECKING:
    import networkx as nx

TASK, RETRY, JUNCTION = 0, 1, 2
"""Node kinds. Junctions are internal no-op nodes that join two large groups of atoms
(n x m edges become n + m); they stay in ``CompiledFlow.graph`` (kind "junction") but
are never stored, notified or drawn."""

KIND_NAMES = ("task", "retry", "junction")
"""Each node kind's name, indexed by kind, as ``CompiledFlow.graph`` and ``flowkit graph`` spell it."""

FROM_ATOM, FROM_STORE = 0, 1
_class_of = attrgetter("__class__")


def _claims_class(cls: type) -> bool:
    """Does ``cls`` define ``__class__`` itself (as mocks do), so its instances may claim another class?"""
    return any("__class__" in vars(base) for base in cls.__mro__[:-1])


class Junction(Atom):
    """What a junction node holds in ``CompiledFlow.atoms``: a placeholder atom that is never run.

    Every slot of ``atoms`` holds an :class:`Atom`, so the engine indexes the list by node id
    with no ``None`` check and no narrowing call per atom transition. Junctions are told apart
    by ``kinds[i] == JUNCTION`` (never by looking at the atom); the engine releases them
    without calling anything. It declares no arguments and provides nothing, so binding and
    the provider index pass over it like any atom with no data.
    """

    def __init__(self) -> None:
        super().__init__(name="junction")

    def execute(self) -> None:
        raise ExecutionError("a junction node was executed: junctions join nodes, they have no atom")

    def revert(self) -> None:
        raise ExecutionError("a junction node was reverted: junctions join nodes, they have no atom")


JUNCTION_ATOM = Junction()
"""The one :class:`Junction` every junction slot of ``CompiledFlow.atoms`` shares."""


@dataclass(slots=True)
class Binding:
    """Where one argument of one atom comes from.

    The compiler's usual case makes it slot by slot (in ``binding.bind``, without ``__init__``):
    a field added here is set there too (tests/test_binding_fast_paths.py compares the two).
    """

    arg: str
    symbol: str
    optional: bool
    kind: int = FROM_STORE
    provider: int = -1
    key: Any = _WHOLE


@dataclass(slots=True)
class DeciderLink:
    """A decider on a link ``u -> v``: evaluated once, when ``v`` is about to start."""

    decider: Callable[..., bool]
    depth: Depth
    history: range  # node ids of u
    target: range  # node ids of v
    scope: range  # node ids of the graph flow holding the link
    label: str
    siblings: frozenset[int] = frozenset()
    """Node ids of the tasks that are direct children of the graph flow holding the link (what a
    FLOW or NEIGHBORS decider reaches: not into nested flows, as TaskFlow)."""


@dataclass(slots=True)
class CompiledFlow:
    """The runnable form of a flow. Indexes are node ids."""

    flow: Flow
    atoms: list[Atom] = field(default_factory=list)
    """The atom of each node; junction nodes hold :data:`JUNCTION_ATOM` (test ``kinds``, not this)."""
    names: list[str] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    preds: list[list[int]] = field(default_factory=list)
    succs: list[list[int]] = field(default_factory=list)
    retry_of: list[int] = field(default_factory=list)
    """Innermost retry controller whose scope holds the node (-1: none)."""
    scope_end: dict[int, int] = field(default_factory=dict)
    """For a retry node r: its scope is ``range(r + 1, scope_end[r])``."""
    bindings: list[tuple[Binding, ...]] = field(default_factory=list)
    revert_bindings: list[tuple[Binding, ...]] = field(default_factory=list)
    single_arg: list[Binding | None] = field(default_factory=list)
    """Per node, its one binding when its execute takes one argument, bound to the whole result of an
    atom (else None): what the engine passes without going through
    :meth:`~flowkit.storage.Storage.bind_args` when that atom is SUCCESS (a graph flow's chain of atoms
    each needing the one before: 2.1k instructions per atom less)."""
    deciders: dict[int, list[DeciderLink]] = field(default_factory=dict)
    providers: dict[str, list[int]] = field(default_factory=dict)
    """Symbol -> the atoms that provide it."""
    store_bound: set[int] | None = None
    """The nodes with an argument bound to the store (for execute or revert), found by binding: what
    :meth:`check_store` looks at (None: not known, it looks at every node)."""
    keyed: list[bool] = field(default_factory=list)
    """Whether the atom provides by key or index (its results are checked when it succeeds)."""
    index: dict[str, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    """A topological order of all nodes."""
    prioritized: bool = False
    """Some atom has a non-zero ``priority``: the engine orders each round's ready atoms by it."""
    _graph: nx.DiGraph[str] | None = field(default=None, repr=False, compare=False)
    _classes: frozenset[type] | None = field(default=None, repr=False, compare=False)

    @property
    def graph(self) -> nx.DiGraph[str]:
        """The DAG as a ``networkx.DiGraph`` of atom names, for people and tools; built on first use.

        Nodes carry ``atom`` and ``kind`` ("task", "retry" or "junction"). Nothing flowkit runs
        needs it, so compiling never pays for it and ``import flowkit`` never imports networkx
        (it comes with the ``flowkit[graph]`` extra).
        """
        if self._graph is None:
            from flowkit.compiler.networkx_view import to_networkx

            self._graph = to_networkx(self)
        return self._graph

    def retry(self, r: int) -> Retry:
        """The retry controller at node ``r``, typed as one (for the retry paths, not the hot loop)."""
        atom = self.atoms[r]
        if not isinstance(atom, Retry):
            raise ExecutionError(f"node {self.names[r]!r} is not a retry controller")
        return atom

    def nodes_of(self, cls: type) -> tuple[int, ...]:
        """The nodes whose atom is an instance of ``cls``, in node order.

        Most flows have none of the special kinds asked about (waits, Maps): the classes present are
        found by a pass in C, and only a flow that holds one pays for a test per atom.
        """
        if not any(issubclass(k, cls) for k in self.atom_classes()):
            return ()
        return tuple(i for i, atom in enumerate(self.atoms) if isinstance(atom, cls))

    def atom_classes(self) -> frozenset[type]:
        """The classes of the atoms (``type()`` and ``__class__``, which ``isinstance`` also honours),
        found on the first question by two passes in C: each run asks a few times (waits, Maps, the
        tasks told progress), and on a large flow each pass cost a few hundred instructions per atom."""
        if self._classes is None:
            classes = set(map(type, self.atoms))
            if any(_claims_class(k) for k in classes):  # a mock, say: its atoms may claim another class
                classes.update(map(_class_of, self.atoms))
            self._classes = frozenset(classes)
        return self._classes

    def atom_ids(self) -> Iterable[int]:
        kinds = self.kinds
        return (i for i in range(len(kinds)) if kinds[i] != JUNCTION)

    def check_store(self, store: dict[str, Any]) -> None:
        """Raise :class:`MissingRequirementError` for the first requirement nothing can satisfy; the
        others follow as its ``cause`` chain (``missing_requirements`` lists them all)."""
        if not any(self.bindings) and not any(self.revert_bindings):
            return  # no atom binds anything (a pass in C)
        missing: list[tuple[str, str, list[str]]] = []
        kinds, revert_bindings = self.kinds, self.revert_bindings
        nodes = range(len(kinds)) if self.store_bound is None else sorted(self.store_bound)
        for i in nodes:
            bindings = self.bindings[i]
            if not (bindings or revert_bindings[i]) or kinds[i] == JUNCTION:
                continue  # most atoms: nothing to check, no tuple built
            for b in (*bindings, *revert_bindings[i]):
                if b.kind == FROM_STORE and not b.optional and b.symbol not in store:
                    others = [self.names[p] for p in self.providers.get(b.symbol, ()) if p != i]
                    missing.append((self.names[i], b.symbol, others))
        error: MissingRequirementError | None = None
        for atom, symbol, others in reversed(missing):
            error = MissingRequirementError(atom, symbol, others, cause=error)
        if error is not None:
            raise error
