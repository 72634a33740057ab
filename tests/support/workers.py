"""A worker on a thread of the test process, over kombu's in-memory transport (no broker needed).

``memory://`` queues are shared by every connection of one process, so an engine in the test talks to
this worker as it would to a remote one. Each caller passes its own exchange, so nothing leaks between
tests that run workers side by side.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

TASK_MODULES = ("tests.worker_tasks", "tests.support.tasks")
"""What test workers serve: a worker serves only the Task classes *defined* in the modules it is given,
so the worker-specific tasks and the ones every dispatcher runs are two modules to name."""

MEMORY_TRANSPORT = "memory://"
MEMORY_OPTIONS: dict[str, Any] = {"polling_interval": 0.001}


@contextlib.contextmanager
def memory_worker(exchange: str, topic: str, tasks: Iterable[Any], threads: int = 2) -> Iterator[Any]:
    """Run a :class:`flowkit.workers.Worker` serving ``tasks`` (classes or module specs) until the block ends.

    Fails if it does not start within 5 s or does not stop within 10 s.
    """
    from flowkit.workers import Worker

    worker = Worker(
        MEMORY_TRANSPORT,
        exchange,
        topic,
        list(tasks),
        threads=threads,
        heartbeat=0.2,
        transport_options=MEMORY_OPTIONS,
    )
    thread = threading.Thread(target=worker.run, name=f"memory-worker-{topic}", daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(5), "the in-memory worker did not start"
        yield worker
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive(), "the worker did not stop"
