"""The flow base: a named, ordered collection of atoms and subflows, with an optional retry.

A flow only records structure; it does no graph work when atoms are added
(TaskFlow copies a whole graph on every ``add``). Everything is worked out once,
by :mod:`flowkit.compiler`, before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, Union

from flowkit.atom import Atom
from flowkit.exceptions import InvalidFlowError

if TYPE_CHECKING:
    from flowkit.retry import Retry

Node: TypeAlias = Union[Atom, "Flow"]


class Flow:
    """Base of the patterns; use :class:`~flowkit.LinearFlow`, :class:`~flowkit.UnorderedFlow`
    or :class:`~flowkit.GraphFlow`."""

    def __init__(self, name: str, retry: Retry | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidFlowError(f"flow name must be a non-empty str, got {name!r}")
        from flowkit.retry import Retry  # local: retry imports failure, keep flow import-light

        if retry is not None and not isinstance(retry, Retry):
            raise InvalidFlowError(f"flow {name!r}: retry must be a flowkit.retry.Retry, got {retry!r}")
        self.name = name
        self.retry = retry
        self._children: list[Node] = []

    def add(self, *items: Node) -> Flow:
        """Add atoms or subflows; returns the flow, so calls chain."""
        for item in items:
            if not isinstance(item, Atom | Flow):
                raise InvalidFlowError(
                    f"flow {self.name!r} can only contain tasks, retries and flows, got {item!r}"
                )
            if item is self:
                raise InvalidFlowError(f"flow {self.name!r} cannot contain itself")
            self._children.append(item)
        return self

    def __iter__(self) -> Iterator[Node]:
        return iter(self._children)

    def __len__(self) -> int:
        return len(self._children)

    def iter_nodes(self) -> Iterator[tuple[Node, dict[str, Any]]]:
        """The children with their metadata, ``(child, {})``, in order (TaskFlow's ``iter_nodes``)."""
        for child in self:
            yield child, {}

    def iter_atoms(self) -> Iterator[Atom]:
        """Every atom in this flow and its subflows (retry controllers first), depth first."""
        stack: list[Any] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, Flow):
                if node.retry is not None:
                    yield node.retry
                stack.extend(reversed(list(node)))
            else:
                yield node

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        """Explicit ordering between children: ``(before, after, metadata)``."""
        return iter(())

    @property
    def provides(self) -> frozenset[str]:
        return frozenset(s for atom in self.iter_atoms() for s in atom.provides)

    @property
    def requires(self) -> frozenset[str]:
        """Symbols needed by this flow's atoms that none of its own atoms provide."""
        provided = self.provides
        return frozenset(s for atom in self.iter_atoms() for s in atom.requires if s not in provided)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({len(self)} children)>"
