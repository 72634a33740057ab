"""Listeners: observers that attach to an engine's notifiers and report what the flow does.

Each one registers on :attr:`Engine.notifier <flowkit.engines.engine.Engine.notifier>` (flow
events) and :attr:`Engine.atom_notifier <flowkit.engines.engine.Engine.atom_notifier>` (atom
events and progress), and works as a context manager::

    with TimingListener(engine) as timing:
        engine.run()
    timing.timings   # {atom_name: seconds}
"""

from flowkit.listeners.base import Listener
from flowkit.listeners.capturing import CaptureListener
from flowkit.listeners.logging import DynamicLoggingListener, LoggingListener
from flowkit.listeners.printing import PrintingListener
from flowkit.listeners.timing import (
    DurationListener,
    EventTimeListener,
    PrintingDurationListener,
    TimingListener,
)

__all__ = [  # noqa: RUF022 - grouped by concept, not sorted
    # base
    "Listener",
    # listeners
    "LoggingListener",
    "PrintingListener",
    "TimingListener",
    # TaskFlow's listeners, under their names (modules as in TaskFlow: capturing, logging, timing)
    "CaptureListener",
    "DynamicLoggingListener",
    "DurationListener",
    "EventTimeListener",
    "PrintingDurationListener",
]
