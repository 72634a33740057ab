"""Bind each argument of each atom to where its value will come from: an atom, or the store.

A requirement is bound to the provider the atom runs after; when several providers run
before it, the nearest one shadows those it runs after (a later step overrides an earlier
one), and two that do not order each other are ambiguous. Providers that do not run before
the atom are not visible to it: the value must then come from the store.

Cost: direct predecessors are checked first, then a reachability search whose results are
remembered per provider (atoms are bound in topological order, which keeps the memo effective).
"""

from __future__ import annotations

from collections.abc import Mapping

from flowkit.atom import _WHOLE, Atom
from flowkit.compiler.compiled import FROM_ATOM, Binding, CompiledFlow
from flowkit.exceptions import AmbiguousProviderError


def bind(c: CompiledFlow) -> None:
    """Fill ``providers``, ``keyed``, ``bindings`` and ``revert_bindings`` of ``c`` (already sorted)."""
    n = len(c.atoms)
    providers = _providers(c)
    reach = _Reachability(c.preds, c.order)
    bindings: list[tuple[Binding, ...]] = [()] * n
    revert_bindings: list[tuple[Binding, ...]] = [()] * n
    single_arg: list[Binding | None] = [None] * n
    c.bindings, c.revert_bindings, c.single_arg = bindings, revert_bindings, single_arg
    atoms, preds = c.atoms, c.preds
    store_bound = c.store_bound = set()
    for i in c.order:  # topological order keeps the reachability memo effective
        atom = atoms[i]
        # most atoms take no arguments: they keep the empty tuple, without a call per atom
        required, optional = atom.required_rebind, atom.optional_rebind
        if optional:
            bindings[i] = _bind_args(c, i, atom, required, optional, providers, reach, store_bound)
        elif required:
            # the usual case, inline: each argument from the one atom that provides it, run just before
            # (``found[0] != i`` need not be asked: a node is never its own predecessor, the sort
            # refused that cycle)
            bound = []
            for arg in required:
                symbol = required[arg]
                found = providers.get(symbol)
                if found is not None and len(found) == 1 and found[0] in preds[i]:
                    p = found[0]
                    # Binding(arg, symbol, False, FROM_ATOM, p, key) for half the cost: calling the class
                    # goes through type.__call__ into the dataclass's __init__ (1.6k instructions, once
                    # per argument of every atom); its slots are filled here instead
                    b = _blank(Binding)
                    b.arg, b.symbol, b.optional, b.kind = arg, symbol, False, FROM_ATOM
                    b.provider, b.key = p, atoms[p].save_as[symbol]
                else:
                    b = _bind_one(c, i, atom, arg, symbol, False, providers, reach)
                    if b.kind != FROM_ATOM:
                        store_bound.add(i)
                bound.append(b)
            if len(bound) == 1:
                bindings[i] = (b,)
                if b.kind == FROM_ATOM and b.key is _WHOLE:
                    single_arg[i] = b  # one argument, another atom's whole result: see Run.start
            else:
                bindings[i] = tuple(bound)
        if atom.revert_required_rebind or atom.revert_optional_rebind:
            revert_bindings[i] = _bind_args(
                c,
                i,
                atom,
                atom.revert_required_rebind,
                atom.revert_optional_rebind,
                providers,
                reach,
                store_bound,
            )


_blank = object.__new__


def _providers(c: CompiledFlow) -> dict[str, list[int]]:
    """Fill ``c.providers`` (per symbol, the atoms that provide it, in node order) and ``c.keyed``
    (does the atom provide by key or index: its results are then checked when it succeeds).

    One pass over the atoms for both: on a large flow each pass reads memory that is cold.
    """
    providers = c.providers
    keyed = c.keyed = [False] * len(c.atoms)
    for i, atom in enumerate(c.atoms):
        save_as = atom.save_as
        if save_as:  # most atoms provide nothing (a junction never does)
            for symbol in save_as:  # one loop for both: no generator, no empty list per symbol
                if symbol in providers:
                    providers[symbol].append(i)
                else:
                    providers[symbol] = [i]
                if save_as[symbol] is not _WHOLE:
                    keyed[i] = True
    return providers


def _bind_args(
    c: CompiledFlow,
    i: int,
    atom: Atom,
    required: Mapping[str, str],
    optional: Mapping[str, str],
    providers: dict[str, list[int]],
    reach: _Reachability,
    store_bound: set[int],
) -> tuple[Binding, ...]:
    """One call's bindings (execute's or revert's): the required arguments, then the optional ones;
    ``i`` goes into ``store_bound`` when one of them is bound to the store."""
    bound = [_bind_one(c, i, atom, arg, symbol, False, providers, reach) for arg, symbol in required.items()]
    if optional:
        bound.extend(
            _bind_one(c, i, atom, arg, symbol, True, providers, reach) for arg, symbol in optional.items()
        )
    if any(b.kind != FROM_ATOM for b in bound):
        store_bound.add(i)
    return tuple(bound)


def _bind_one(
    c: CompiledFlow,
    i: int,
    atom: Atom,
    arg: str,
    symbol: str,
    optional: bool,
    providers: dict[str, list[int]],
    reach: _Reachability,
) -> Binding:
    found = providers.get(symbol)
    if found is not None and len(found) == 1:  # one provider (most symbols): no candidate list
        candidates = found if found[0] != i else []
    else:
        candidates = [p for p in found or () if p != i]
    if not candidates:
        return Binding(arg, symbol, optional)
    preds_i = c.preds[i]
    if len(candidates) == 1:
        p = candidates[0]
        if p in preds_i or reach.reaches(p, i):
            return Binding(arg, symbol, optional, FROM_ATOM, p, c.atoms[p].save_as[symbol])
        return Binding(arg, symbol, optional)
    visible = [p for p in candidates if p in preds_i or reach.reaches(p, i)]
    if not visible:
        return Binding(arg, symbol, optional)
    # The nearest provider shadows the ones it runs after (a later step overrides an earlier one).
    nearest = [p for p in visible if not any(q != p and reach.reaches(p, q) for q in visible)]
    if len(nearest) > 1:
        raise AmbiguousProviderError(atom.name, symbol, [c.names[p] for p in nearest])
    p = nearest[0]
    return Binding(arg, symbol, optional, FROM_ATOM, p, c.atoms[p].save_as[symbol])


class _Reachability:
    """``reaches(p, i)``: is there a path from ``p`` to ``i``? Remembers the descendants found per ``p``.

    A backward search from ``i`` that skips nodes sorted before ``p`` (they cannot lie on a
    path from it); asking in topological order makes repeated questions about one
    provider O(1) (a chain of 100,000 atoms needing the first one's output stays linear).
    """

    __slots__ = ("_known", "_order", "_preds", "_topo")

    def __init__(self, preds: list[list[int]], order: list[int]) -> None:
        self._preds = preds
        self._order = order
        self._topo: list[int] | None = None
        """Each node's rank in ``order``; worked out on the first question (most flows ask none:
        a provider that is a direct predecessor needs no search)."""
        self._known: dict[int, set[int]] = {}

    def reaches(self, p: int, i: int) -> bool:
        topo = self._topo
        if topo is None:
            topo = self._topo = [0] * len(self._order)
            for rank, x in enumerate(self._order):
                topo[x] = rank
        if topo[p] >= topo[i]:
            return False
        known = self._known.setdefault(p, {p})
        if i in known:
            return True
        floor = topo[p]
        stack = [i]
        seen = {i}
        preds = self._preds
        while stack:
            x = stack.pop()
            for q in preds[x]:
                if q in known:
                    known.add(i)
                    return True
                if q not in seen and topo[q] > floor:
                    seen.add(q)
                    stack.append(q)
        return False
