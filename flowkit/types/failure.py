"""``flowkit.types.failure``: TaskFlow's path to :class:`flowkit.failure.Failure` (the same class)."""

from flowkit.failure import Failure

__all__ = ["Failure"]
