"""Whether a request sent to the workers has failed by their silence (stages 2 and 3 of the dispatcher).

A request sent and not yet taken fails when no worker took it for the transition timeout while the
live workers serving it were not all busy; a running one fails when its worker stops heartbeating,
or when this engine has been without a broker for that long. Waiting behind busy workers is not a
fault, and neither is silence while this engine's own connection is down.

Apart from the dispatcher because this is a judgement from the workers' heartbeats alone, with no
messaging: the dispatcher fails the requests it names.
"""

from __future__ import annotations

from flowkit.exceptions import RequestTimeout
from flowkit.workers.discovery import Registry
from flowkit.workers.request import RUNNING, SENT, Request


def silence(
    req: Request,
    registry: Registry,
    now: float,
    timeout: float,
    down_since: float | None,
    saturated: dict[tuple[str, str], bool],
) -> RequestTimeout | None:
    """Why the sent or running ``req`` has failed by now, or None while it may still complete.

    ``down_since``: since when this engine has had no broker (None: connected); ``saturated``: a
    memo of :meth:`Registry.saturated` by (topic, task) for one round of checks. A request found
    waiting its turn has ``waited`` moved to ``now``.
    """
    # While our own connection is down, workers' silence says nothing about them; but after T
    # without a broker, what they ran can no longer be answered to us in time either.
    if down_since is not None and req.stage == RUNNING:
        if now - down_since <= timeout:
            return None
        return RequestTimeout(
            f"lost the broker for {timeout:g}s while worker {req.worker!r} ran atom "
            f"{req.atom_name!r} (task {req.task}, request {req.uuid})"
        )
    if req.stage == SENT:
        key = (req.topic, req.task)
        busy = saturated.get(key)
        if busy is None:
            busy = saturated[key] = registry.saturated(req.topic, req.task, now)
        if busy:
            req.waited = now  # its turn comes when a thread does: not a fault
            return None
        if now - req.waited <= timeout:
            return None
        return RequestTimeout(
            f"no worker took request {req.uuid} for atom {req.atom_name!r} (task "
            f"{req.task}) on topic {req.topic!r} within {timeout:g}s, and no live worker "
            f"serving it was busy: they died, left, or stopped taking requests"
        )
    if registry.alive(req.worker, now):
        return None
    return RequestTimeout(
        f"worker {req.worker!r} stopped heartbeating while it ran atom {req.atom_name!r} "
        f"(task {req.task}, request {req.uuid})"
    )
