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
        if retry is not None and getattr(retry, "default_named", False):
            retry.name = f"{name}_retry"  # an unnamed controller is named after its flow (TaskFlow's rule)
            retry.default_named = False
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
        """Symbols this flow's controller and children provide."""
        out: set[str] = set()
        if self.retry is not None:
            out.update(self.retry.provides)
        for child in self:
            out.update(child.provides)
        return frozenset(out)

    @property
    def requires(self) -> frozenset[str]:
        """Symbols this flow needs from outside, as TaskFlow reports them: in child order, a child's
        requirement is met only by the controller or an earlier child (the linear rule; the other
        patterns override it). Optional arguments are not included."""
        needed: set[str] = set()
        prior: set[str] = set()
        if self.retry is not None:
            needed.update(self.retry.requires)
            prior.update(self.retry.provides)
        for child in self:
            needed.update(s for s in child.requires if s not in prior)
            prior.update(child.provides)
        return frozenset(needed)

    #: how ``str()`` names the pattern (TaskFlow's spelling for the built-in ones)
    _kind = "flow.Flow"

    def __str__(self) -> str:
        return f'"{self._kind}: {self.name}(len={len(self)})"'

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({len(self)} children)>"
