"""Listeners: observers that attach to an engine's notifiers and report what the flow does.

Each one registers on :attr:`Engine.notifier <flowkit.engines.engine.Engine.notifier>` (flow
events) and :attr:`Engine.atom_notifier <flowkit.engines.engine.Engine.atom_notifier>` (atom
events and progress), and works as a context manager::

    with TimingListener(engine) as timing:
        engine.run()
    timing.timings   # {atom_name: seconds}
"""

from flowkit.listeners.base import Listener
from flowkit.listeners.logging import LoggingListener
from flowkit.listeners.printing import PrintingListener
from flowkit.listeners.timing import TimingListener

__all__ = [
    # base
    "Listener",
    # listeners
    "LoggingListener",
    "PrintingListener",
    "TimingListener",
]
