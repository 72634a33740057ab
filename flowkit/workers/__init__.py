"""Remote workers: the worker-based engine sends each atom's execute or revert to a worker over RabbitMQ.

Start workers with ``flowkit-worker`` (:mod:`flowkit.workers.cli`), then run a flow with
``engines.load(flow, engine="worker-based", transport=URL, exchange=..., topics=[...])``.
The wire format is described in :mod:`flowkit.workers.protocol`, the broker entities in
:mod:`flowkit.workers.topology`.
"""

from flowkit.workers.dispatcher import WorkerDispatcher
from flowkit.workers.engine import load
from flowkit.workers.tasks import resolve_tasks
from flowkit.workers.worker import Worker

__all__ = ["Worker", "WorkerDispatcher", "load", "resolve_tasks"]
