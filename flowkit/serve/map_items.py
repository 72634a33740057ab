"""A Map's items for the console: read from the child flow detail its Map atom links to.

A :class:`flowkit.Map` runs its items as a child run saved as a flow detail of its own in the same
backend, linked from the Map atom's metadata (``meta["map"] = {"flow_uuid", "items"}``); item ``k``'s
atoms are named ``"<map>[k].<name>"`` (:mod:`flowkit.map`). :func:`maps_of` reads those child flow
details and groups their atoms per item (a Map among an item's atoms gets its own items, recursively),
bounded in depth, items per Map and atoms per request, so a Map of 100,000 items costs one page, not
the server. :class:`MapWatch` is the same walk for a live stream: which child flows it polls besides
the flow itself, found again when something moved (a Map links its child just after it starts).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowkit.exceptions import NotFound
from flowkit.persistence import queries
from flowkit.persistence.backends.base import Backend
from flowkit.persistence.models import AtomDetail, FlowDetail
from flowkit.serve import flow_models as m
from flowkit.states import AtomState, FlowState

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MapWatch", "item_state", "map_link", "maps_of"]

MAP_META = "map"
MAX_DEPTH = 3
"""Maps inside Map items shown this deep (the outermost Map is depth 1)."""
MAX_ITEMS = 100
"""Items shown per Map (the first ones, in item order); ``MapOut.size`` says how many there are."""
MAX_ATOMS = 2000
"""Item atoms shown per request, over all its Maps: the rest are counted, not listed."""
MAX_WATCHED = 64
"""Child flows one live stream polls besides its flow."""
LOOK_SECONDS = 1.0
"""How often a live stream looks again for the child of a running atom (a Map links it as it starts)."""

S = AtomState
_BUSY = (S.REVERTING, S.RUNNING, S.RETRYING)


def map_link(ad: AtomDetail) -> str | None:
    """The uuid of the child flow detail a Map atom's metadata links to, or None (not a started Map)."""
    link = ad.meta.get(MAP_META) if isinstance(ad.meta, dict) else None
    found = link.get("flow_uuid") if isinstance(link, dict) else None
    return found if isinstance(found, str) and found else None


def item_state(states: Iterable[AtomState]) -> str:
    """One state for an item from its atoms': a failure wins, then work in progress, then the rest."""
    seen = set(states)
    if not seen:
        return S.PENDING.value
    for bad in (S.REVERT_FAILURE, S.FAILURE):
        if bad in seen:
            return S.FAILURE.value
    for busy in _BUSY:
        if busy in seen:
            return busy.value
    if seen <= {S.SUCCESS, S.IGNORE}:
        return S.SUCCESS.value
    if seen <= {S.PENDING}:
        return S.PENDING.value
    if seen <= {S.REVERTED, S.PENDING, S.IGNORE}:
        return S.REVERTED.value
    return S.RUNNING.value  # some done, some not started: between two of its atoms


@dataclass
class _Budget:
    atoms: int = MAX_ATOMS


def maps_of(
    backend: Backend, fd: FlowDetail, depth: int = 1, budget: _Budget | None = None
) -> dict[str, m.MapOut]:
    """Per Map atom of ``fd`` that linked a child flow, its items (see the module docstring)."""
    budget = budget or _Budget()
    out: dict[str, m.MapOut] = {}
    if depth > MAX_DEPTH:
        return out
    for ad in sorted(fd, key=lambda a: (a.position or 0, a.name)):
        child_uuid = map_link(ad)
        if child_uuid is None:
            continue
        out[ad.name] = _map_out(backend, ad, child_uuid, depth, budget)
    return out


def _map_out(backend: Backend, ad: AtomDetail, child_uuid: str, depth: int, budget: _Budget) -> m.MapOut:
    saved = ad.meta.get(MAP_META, {}).get("items")
    size = saved if isinstance(saved, int) and not isinstance(saved, bool) else 0
    try:
        with backend.get_connection() as conn:
            child = conn.get_flow_detail(child_uuid)
    except NotFound:  # linked, not saved yet (or deleted since)
        return m.MapOut(flow_uuid=child_uuid, state=FlowState.PENDING.value, size=size, items=[], shown=0)
    per_item = _split(ad.name, child)
    nested = maps_of(backend, child, depth + 1, budget)
    items: list[m.MapItemOut] = []
    for k in sorted(per_item)[:MAX_ITEMS]:
        atoms = sorted(per_item[k], key=lambda a: (a.position or 0, a.name))
        if len(atoms) > budget.atoms:
            break
        budget.atoms -= len(atoms)
        items.append(
            m.MapItemOut(
                index=k,
                state=item_state(a.state for a in atoms),
                atoms=[m.AtomOut.of(a, nested) for a in atoms],
            )
        )
    return m.MapOut(
        flow_uuid=child_uuid,
        state=(child.state or FlowState.PENDING).value,
        size=max(size, len(per_item)),
        items=items,
        shown=len(items),
    )


def _split(map_name: str, child: FlowDetail) -> dict[int, list[AtomDetail]]:
    """The child's atoms by item index, read from their names (``"<map>[k].<name>"``)."""
    pattern = re.compile(re.escape(map_name) + r"\[(\d+)\]\.")
    out: dict[int, list[AtomDetail]] = {}
    for ad in child:
        found = pattern.match(ad.name)
        if found is not None:
            out.setdefault(int(found.group(1)), []).append(ad)
    return out


Marks = dict[str, tuple[Any, ...]]


@dataclass
class MapWatch:
    """The flows a live stream polls: ``root`` and the child flows of its Maps (recursively, bounded).

    :meth:`poll` reads every watched flow's marks (:func:`flowkit.persistence.queries.atom_marks`,
    nothing decoded), then looks for new children, decoding a flow detail only in a flow whose atoms
    moved, or (at most every :data:`LOOK_SECONDS`) in one with a running atom not known to be a Map.
    """

    backend: Backend
    root: str
    children: dict[str, str] = field(default_factory=dict)
    """Child flow uuid -> the name of the Map atom that runs it."""
    _maps: dict[str, set[str]] = field(default_factory=dict)
    """Per watched flow, its Map atoms whose child is known."""
    _last: dict[str, Marks] = field(default_factory=dict)
    _depth: dict[str, int] = field(default_factory=dict)
    """Per child flow, how many Maps deep it is (the root's children: 1)."""
    _next_look: float = 0.0

    def poll(self) -> dict[str, tuple[str, Marks]]:
        """Every watched flow's state and marks; NotFound when the root flow is gone."""
        out = {self.root: queries.atom_marks(self.backend, self.root)}
        for child in list(self.children):
            try:
                out[child] = queries.atom_marks(self.backend, child)
            except NotFound:
                continue  # linked but not saved yet: next time
        now = time.monotonic()
        look_running = now >= self._next_look
        if look_running:
            self._next_look = now + LOOK_SECONDS
        for flow_uuid, (_, marks) in list(out.items()):
            moved = self._last.get(flow_uuid) != marks
            known = self._maps.get(flow_uuid, set())
            unknown_running = look_running and any(
                mk[0] == S.RUNNING.value and name not in known for name, mk in marks.items()
            )
            if moved or unknown_running:
                self._look(flow_uuid)
            self._last[flow_uuid] = marks
        return out

    def _look(self, flow_uuid: str) -> None:
        depth = self._depth.get(flow_uuid, 0)
        if depth >= MAX_DEPTH:
            return
        try:
            with self.backend.get_connection() as conn:
                fd = conn.get_flow_detail(flow_uuid)
        except NotFound:
            return
        found = self._maps.setdefault(flow_uuid, set())
        for ad in fd:
            child = map_link(ad)
            if child is None or child in self.children:
                continue
            if len(self.children) >= MAX_WATCHED:
                return
            self.children[child] = ad.name
            self._depth[child] = depth + 1
            found.add(ad.name)
