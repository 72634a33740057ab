"""flowkit: flows of tasks that finish or undo themselves, survive crashes and spread over machines.

The public surface is re-exported here, grouped in ``__all__``: atoms and flows, states and
failures, and the modules for engines, retry controllers, notifications and atom context.
Persistence (``flowkit.persistence``), job boards (``flowkit.jobboard``) and remote workers
(``flowkit.workers``) are imported on demand, so ``import flowkit`` pulls in none of their
dependencies.
"""

from flowkit import context, engines, exceptions, notifier, retry, states
from flowkit.atom import Atom
from flowkit.exceptions import FlowkitError, WrappedFailure
from flowkit.failure import Failure
from flowkit.flow import Flow
from flowkit.map import Map
from flowkit.patterns.graph_flow import GraphFlow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.patterns.unordered_flow import UnorderedFlow
from flowkit.retry import Retry
from flowkit.states import AtomState, FlowState
from flowkit.task import FunctorTask, Task
from flowkit.waits import Sleep, WaitForEvent

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - grouped by concept, not sorted
    # atoms and flows
    "Atom",
    "Task",
    "FunctorTask",
    "Retry",
    "Flow",
    "LinearFlow",
    "UnorderedFlow",
    "GraphFlow",
    "Map",
    # waits
    "Sleep",
    "WaitForEvent",
    # states and failures
    "AtomState",
    "FlowState",
    "Failure",
    "FlowkitError",
    "WrappedFailure",
    # modules
    "context",
    "engines",
    "exceptions",
    "notifier",
    "retry",
    "states",
]
