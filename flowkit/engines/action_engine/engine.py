"""The engine classes by TaskFlow's names: what ``engines.load`` returns for each kind.

They add nothing to :class:`~flowkit.engines.engine.Engine` (the kind's dispatcher makes the
difference); they exist so that ``type(engine)`` reads as in TaskFlow, which its printing listeners
and many users' logs show (``...action_engine.engine.ParallelActionEngine object at 0x...``), and
so that ``isinstance(engine, SerialActionEngine)`` works after the import rename.
"""

from __future__ import annotations

from flowkit.engines.engine import Engine

__all__ = ["ActionEngine", "ParallelActionEngine", "SerialActionEngine"]


class ActionEngine(Engine):
    """TaskFlow's base engine class name; every flowkit engine is an :class:`Engine` too."""


class SerialActionEngine(ActionEngine):
    """The ``"serial"`` engine: atoms run one at a time in the caller's thread."""


class ParallelActionEngine(ActionEngine):
    """The ``"parallel"`` engine: atoms run on an executor (threads by default)."""
