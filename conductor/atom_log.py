"""One log line per atom outcome, carrying the job and the flow it belongs to.

Logged under ``flowkit.conductor.atoms`` (so ``--log-level`` and a logging config can keep or drop them
apart from the conductor's own lines): INFO when an atom ends (SUCCESS, FAILURE with the failure's
summary, REVERTED, REVERT_FAILURE), DEBUG for every other transition. An operator greps a job's or a
flow's uuid and sees what each of its atoms did, whichever conductor ran it.
"""

from __future__ import annotations

import logging
from typing import Any

from flowkit.engines import Engine
from flowkit.jobboard import Job
from flowkit.notifier import ANY
from flowkit.states import AtomState

LOG = logging.getLogger("flowkit.conductor.atoms")

S = AtomState
ENDED = frozenset({S.SUCCESS, S.FAILURE, S.REVERTED, S.REVERT_FAILURE})


def attach(engine: Engine, job: Job) -> None:
    """Log ``engine``'s atom transitions with ``job``'s uuid and its flow's; tell the engine its job, so
    its requests to workers carry it (a worker logs its atoms with it: :mod:`flowkit.workers.atom_log`)."""
    engine.job_uuid = job.uuid
    flow = job.flow_uuid or "-"

    def on_atom(state: Any, details: dict[str, Any]) -> None:
        if details.get("kind") == "junction" or "atom_name" not in details:
            return  # internal nodes, progress reports
        try:
            atom_state = S(state)
        except ValueError:
            return
        level = logging.INFO if atom_state in ENDED else logging.DEBUG
        if not LOG.isEnabledFor(level):
            return
        failure = details.get("result") if atom_state in (S.FAILURE, S.REVERT_FAILURE) else None
        why = f": {getattr(failure, 'summary', None) or failure}" if failure is not None else ""
        LOG.log(level, "job %s flow %s atom %r %s%s", job.uuid, flow, details["atom_name"], atom_state, why)

    engine.atom_notifier.register(ANY, on_atom)
