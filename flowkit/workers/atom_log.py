"""One log line per atom call a worker ran, carrying the job and the flow it belongs to.

Logged under ``flowkit.worker.atoms`` (kept or dropped apart from the worker's own lines), the
counterpart of the conductor's ``flowkit.conductor.atoms``: INFO when a call ends, with the job and
flow uuids the request carried (``-`` from an engine that sent none: an older flowkit, or an engine not
run by a conductor has no job), the atom, the action, the outcome (``ok`` or ``failed: <summary>``) and
how long it ran. Grepping a job's or a flow's uuid across the workers' logs shows where each of its
atoms ran and how it went.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flowkit.failure import Failure

__all__ = ["LOG", "log_outcome"]

LOG = logging.getLogger("flowkit.worker.atoms")


def log_outcome(worker: str, req: dict[str, Any], seconds: float, body: bytes) -> None:
    """Log the outcome of ``req``, whose ``result`` message is ``body``, after ``seconds`` of running."""
    if not LOG.isEnabledFor(logging.INFO):
        return
    outcome = _outcome(body)
    LOG.info(
        "job %s flow %s atom %r %s %s in %.3fs (worker %s)",
        req.get("job", "-"),
        req.get("flow", "-"),
        req["atom"],
        req["action"],
        outcome,
        seconds,
        worker,
    )


def _outcome(body: bytes) -> str:
    try:
        message = json.loads(body)
    except ValueError:  # our own encoding: never, but a log line must not raise
        return "unknown"
    if message.get("ok"):
        return "ok"
    failure = message.get("failure")
    try:
        summary = Failure.from_dict(failure).summary if isinstance(failure, dict) else "?"
    except Exception:
        summary = "?"
    return f"failed: {summary}"
