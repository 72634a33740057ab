"""Whether a refusal of a redelivered request stands: who might have run it, and when they have spoken.

After a connection drops, the broker may hand a request to a worker again, and the worker refuses a
copy it cannot know is new. The worker that had the request before may be running it, may have
answered it (answers a cut swallowed are sent again after reconnecting, before the worker's next
heartbeat), or may never have seen it (lost in transit). Until each worker that might have had it
has spoken once, the refusal is held; if none runs or answered it, nobody ran it, and it is sent
again. If one of them died meanwhile, it may have run it: the refusal stands.

Apart from the dispatcher because this is a judgement on one request from the workers' heartbeats,
with no messaging: the dispatcher sends the request again when told to.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from flowkit.exceptions import FlowkitError
from flowkit.failure import Failure
from flowkit.workers.discovery import Registry
from flowkit.workers.request import RUNNING, Request

LOG = logging.getLogger("flowkit.workers.dispatcher")  # these lines always came from the dispatcher


class Refusal(enum.Enum):
    """What to do with a worker's refusal of a redelivered copy of a request."""

    STANDS = "stands"
    """The request fails with the refusal (someone may have run it)."""
    HELD = "held"
    """Wait: the workers that might have had it have not all spoken yet (or one runs it)."""
    RESEND = "resend"
    """Nobody else might have had it: send it again."""


def judge(req: Request, registry: Registry, data: dict[str, Any], now: float) -> Refusal:
    """Judge the refusal ``data`` (a result message) of ``req``; a held one is kept on ``req``."""
    refuser = data["worker"]
    if req.stage == RUNNING:
        if req.worker != refuser and registry.alive(req.worker, now):
            LOG.info(
                "worker %r refused a redelivered copy of request %s (atom %r); worker %r runs it",
                refuser,
                req.uuid,
                req.atom_name,
                req.worker,
            )
            return Refusal.HELD
        return Refusal.STANDS
    suspects = {
        w.id
        for w in registry.workers.values()
        if w.topic == req.topic and req.task in w.tasks and w.id != refuser
    }
    if any(not registry.alive(w, now) for w in suspects):
        return Refusal.STANDS
    try:
        req.refusal = Failure.from_dict(data["failure"])
    except FlowkitError:
        return Refusal.STANDS
    req.unheard = suspects
    LOG.info(
        "worker %r refused a redelivered copy of request %s (atom %r): asking %s whether it ran it",
        refuser,
        req.uuid,
        req.atom_name,
        sorted(suspects) or "nobody else",
    )
    return Refusal.HELD if suspects else Refusal.RESEND


def suspect_died(req: Request, registry: Registry, now: float) -> bool:
    """Whether a held refusal of ``req`` now stands: a worker that might have run it died unheard."""
    return req.unheard is not None and any(not registry.alive(w, now) for w in req.unheard)
