"""Children run in any order, in parallel on a parallel engine."""

from __future__ import annotations

from flowkit.flow import Flow as _Flow


class UnorderedFlow(_Flow):
    """No ordering between children: they may run at the same time.

    A child cannot use what a sibling provides (it might not have run yet); such a
    requirement is a compile error unless something before the flow provides it.
    """


Flow = UnorderedFlow  # TaskFlow spelling: unordered_flow.Flow
