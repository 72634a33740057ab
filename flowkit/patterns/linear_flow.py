"""Children run one after another, in the order they were added."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from flowkit import flow
from flowkit.flow import Node


class LinearFlow(flow.Flow):
    """Each child starts after the previous one has finished."""

    _kind = "linear_flow.Flow"

    def iter_links(self) -> Iterator[tuple[Node, Node, dict[str, Any]]]:
        """Each child to the next; ``invariant`` marks links that follow from the pattern itself."""
        for before, after in pairwise(self._children):
            yield before, after, {"invariant": True}


Flow = LinearFlow  # TaskFlow spelling: linear_flow.Flow
