"""flowkit: flows of tasks that finish or undo themselves, survive crashes and spread over machines.

The public surface, grouped:
"""

from flowkit import context, engines, exceptions, notifier, retry, states
from flowkit.atom import Atom
from flowkit.exceptions import FlowkitError, WrappedFailure
from flowkit.failure import Failure
from flowkit.flow import Flow
from flowkit.patterns.graph_flow import GraphFlow
from flowkit.patterns.linear_flow import LinearFlow
from flowkit.patterns.unordered_flow import UnorderedFlow
from flowkit.retry import Retry
from flowkit.states import AtomState, FlowState
from flowkit.task import FunctorTask, Task

__version__ = "0.1.0"

__all__ = [
    # atoms
    "Atom",
    "AtomState",
    # failures
    "Failure",
    # flows
    "Flow",
    "FlowState",
    "FlowkitError",
    "FunctorTask",
    "GraphFlow",
    "LinearFlow",
    "Retry",
    "Task",
    "UnorderedFlow",
    "WrappedFailure",
    # modules
    "context",
    "engines",
    "exceptions",
    "notifier",
    "retry",
    "states",
]
