"""Children ordered by their data dependencies, plus explicit links."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

from flowkit.exceptions import InvalidAtomArgumentError, InvalidFlowError
from flowkit.flow import Flow as _Flow
from flowkit.flow import Node


class Depth(StrEnum):
    """How far a false decider reaches (what ends in IGNORE)."""

    ALL = "ALL"
    """The target and every atom that runs after it, in any flow."""
    FLOW = "FLOW"
    """The target and the atoms after it inside the graph flow that holds the link."""
    NEIGHBORS = "NEIGHBORS"
    """The target's atoms and the atoms directly after them."""
    ATOM = "ATOM"
    """Only the target (its atoms, when the target is a flow)."""


class GraphFlow(_Flow):
    """A child runs after every sibling that provides something it requires, and after
    the siblings linked to it with :meth:`link`."""

    def __init__(self, name: str, retry: Any = None) -> None:
        super().__init__(name, retry=retry)
        self._links: list[tuple[Node, Node, dict[str, Any]]] = []

    def link(
        self,
        u: Node,
        v: Node,
        decider: Callable[..., bool] | None = None,
        decider_depth: Depth | str = Depth.ALL,
    ) -> GraphFlow:
        """Run ``v`` after ``u``; with a ``decider``, run ``v`` only if ``decider(history=...)`` is true.

        ``history`` maps each atom of ``u`` to its result. When the decider returns false,
        the atoms chosen by ``decider_depth`` end in IGNORE and the flow still succeeds.
        """
        for node in (u, v):
            if not any(node is child for child in self._children):
                raise InvalidFlowError(
                    f"graph flow {self.name!r}: cannot link {getattr(node, 'name', node)!r}, "
                    f"it is not a child of this flow (add it first)"
                )
        if u is v:
            raise InvalidFlowError(f"graph flow {self.name!r}: cannot link {u.name!r} to itself")
        if decider is not None and not callable(decider):
            raise InvalidFlowError(f"graph flow {self.name!r}: decider must be callable, got {decider!r}")
        try:
            depth = Depth(decider_depth.upper() if isinstance(decider_depth, str) else decider_depth)
        except ValueError:
            raise InvalidFlowError(
                f"graph flow {self.name!r}: unknown decider_depth {decider_depth!r} "
                f"(one of {', '.join(d.value for d in Depth)})"
            ) from None
        self._links.append((u, v, {"decider": decider, "depth": depth, "flow": self}))
        return self

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        return iter(self._links)


class TargetedFlow(GraphFlow):
    """A graph flow that runs only what one child (its target) needs: the target and the children
    it depends on, through links or data, directly or not (TaskFlow's ``TargetedFlow``).

    Without a target (:meth:`reset_target`) it is a plain graph flow. The selection is made when
    the flow is iterated (so when it is compiled), from the children and links it has then.
    """

    def __init__(self, name: str, retry: Any = None) -> None:
        super().__init__(name, retry=retry)
        self._target: Node | None = None

    def set_target(self, target: Node) -> None:
        """Run only ``target`` (a child of this flow) and what it depends on."""
        if not any(target is child for child in self._children):
            raise InvalidAtomArgumentError(
                f"Node {getattr(target, 'name', target)!r} not found in targeted flow {self.name!r} "
                f"(add it before making it the target)"
            )
        self._target = target

    def reset_target(self) -> None:
        """Run every child again."""
        self._target = None

    @property
    def target(self) -> Node | None:
        return self._target

    def _selected(self) -> list[Node]:
        target = self._target
        if target is None:
            return list(self._children)
        needed = {id(target)}
        frontier = [target]
        while frontier:
            v = frontier.pop()
            wants = set(v.requires)
            for u in self._children:
                if id(u) in needed:
                    continue
                linked = any(a is u and b is v for a, b, _ in self._links)
                if linked or wants.intersection(u.provides):
                    needed.add(id(u))
                    frontier.append(u)
        return [child for child in self._children if id(child) in needed]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._selected())

    def __len__(self) -> int:
        return len(self._selected())

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        chosen = {id(child) for child in self._selected()}
        return iter([link for link in self._links if id(link[0]) in chosen and id(link[1]) in chosen])


Flow = GraphFlow  # TaskFlow spelling: graph_flow.Flow
