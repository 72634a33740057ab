"""Children run in any order, in parallel on a parallel engine."""

from __future__ import annotations

from flowkit.flow import Flow as _Flow


class UnorderedFlow(_Flow):
    """No ordering between children: they may run at the same time.

    A child cannot use what a sibling provides (it might not have run yet); such a
    requirement is a compile error unless something before the flow provides it.
    """

    _kind = "unordered_flow.Flow"

    @property
    def requires(self) -> frozenset[str]:
        """What the controller and the children need; only the controller's output meets a child's
        requirement (a sibling may not have run yet)."""
        needed: set[str] = set()
        given: frozenset[str] = frozenset()
        if self.retry is not None:
            needed.update(self.retry.requires)
            given = frozenset(self.retry.provides)
        for child in self:
            needed.update(s for s in child.requires if s not in given)
        return frozenset(needed)


Flow = UnorderedFlow  # TaskFlow spelling: unordered_flow.Flow
