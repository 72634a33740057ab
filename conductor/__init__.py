"""The conductor daemon: claims jobs from a flowkit job board and runs their flows with persistence.

Start it with ``flowkit-conductor --board URL --persistence URL`` (see :mod:`conductor.cli`), or
embed :class:`Conductor` in a process of your own.
"""

from conductor.loop import Conductor, Stats

__all__ = ["Conductor", "Stats"]
