"""One call of a task on a worker's task thread: run it, and turn what came out into the answer.

Runs on a pool thread (an ``async def`` action: on the worker's event loop), never on the thread that owns
the connection: it hands its ``progress`` and ``event`` messages to that thread through ``post`` (see
:mod:`flowkit.workers.worker`).
"""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Callable, Mapping
from typing import Any

from flowkit.context import AtomContext, reset_current, set_current
from flowkit.engines.aio import call_async
from flowkit.exceptions import CoroutineResult, FlowkitError, InvalidMessageError, NotSerializableError
from flowkit.failure import Failure
from flowkit.notifier import ANY, EVENT_UPDATE_PROGRESS
from flowkit.task import Task
from flowkit.workers import protocol as p

LOG = logging.getLogger(__name__)

Post = Callable[[tuple[Any, ...]], None]
"""Hands ``(kind, request uuid, reply_to, body)`` to the connection's thread."""


def call_task(
    cls: type[Task],
    req: dict[str, Any],
    extras: dict[str, Any],
    reply_to: str,
    worker: str,
    post: Post,
    interruptible: bool = False,
) -> bytes:
    """Run the request's action; its ``result`` as a batch item (a failure never escapes as an
    exception): the worker's thread makes it a message of its own or puts it in a ``results`` batch.

    ``interruptible``: on the worker's loop thread (which may be the main thread) a KeyboardInterrupt
    stops the worker, as it does while that thread waits for the broker, instead of failing the call."""
    req_id, atom = req["uuid"], req["atom"]
    ctx, relay = _begin(req, reply_to, worker, post)
    token = set_current(ctx)
    try:
        task = cls(name=atom)
        task.notifier.register(ANY, relay)  # relayed to the engine's copy of the task (TaskFlow does)
        fn = task.execute if req["action"] == "execute" else task.revert
        result = fn(**req["arguments"], **extras)
        if type(result) is types.CoroutineType:  # never sent as a result (see CoroutineResult)
            result.close()
            raise CoroutineResult(atom, req["action"])
    except KeyboardInterrupt:
        if interruptible:
            raise
        return failure_item(req_id, Failure.from_base_exception())
    except BaseException:  # even SystemExit: the engine must get an answer, the worker must go on
        return failure_item(req_id, Failure.from_base_exception())
    finally:
        reset_current(token)
    return result_item(req_id, atom, result)


async def call_task_async(
    cls: type[Task],
    req: dict[str, Any],
    extras: dict[str, Any],
    reply_to: str,
    worker: str,
    post: Post,
    timeout: float | None,
) -> bytes:
    """:func:`call_task` for an ``async def`` action, awaited on the worker's event loop and cancelled
    there at ``timeout`` (the call then fails with AtomTimeout)."""
    req_id, atom = req["uuid"], req["atom"]
    ctx, relay = _begin(req, reply_to, worker, post)
    try:
        task = cls(name=atom)
        task.notifier.register(ANY, relay)
    except Exception:
        return failure_item(req_id, Failure())
    kwargs = {**req["arguments"], **extras}
    ok, value = await call_async(task, req["action"], kwargs, ctx, timeout, f"worker {worker!r}")
    if not ok:
        return failure_item(req_id, value)
    return result_item(req_id, atom, value)


def _begin(
    req: dict[str, Any], reply_to: str, worker: str, post: Post
) -> tuple[AtomContext, Callable[[str, Mapping[str, Any]], None]]:
    """The context its task sees (progress goes to the engine), and the listener that relays the events
    the task sends on its own notifier to the engine. (The worker's own thread announces the call as
    running, when it hands it over: no message from here, nor a wake-up of that thread, per call.)"""
    req_id, atom = req["uuid"], req["atom"]

    def progress(_name: str, value: float) -> None:
        body = p.encode(p.PROGRESS, uuid=req_id, worker=worker, progress=value)
        post((p.PROGRESS, req_id, reply_to, body))

    def relay(event_type: str, details: Mapping[str, Any]) -> None:
        if event_type == EVENT_UPDATE_PROGRESS:  # sent as a progress message already
            return
        try:
            body = p.encode(p.EVENT, uuid=req_id, worker=worker, event=event_type, details=dict(details))
        except (TypeError, ValueError) as exc:
            LOG.warning(
                "task %r: event %r not sent to the engine: its details are not JSON (%s)",
                atom,
                event_type,
                exc,
            )
            return
        post((p.EVENT, req_id, reply_to, body))

    return AtomContext(atom, req.get("atom_uuid", ""), progress), relay


def result_item(req_id: str, atom: str, result: Any) -> bytes:
    """The ``result`` item of a call that returned ``result`` (a failure when it is not JSON)."""
    if result is None:  # most tasks return nothing: a constant but for the uuid
        return b'{"uuid": %s, "ok": true, "result": null}' % json.dumps(req_id).encode()
    try:
        p.check_json(result)
        return p.encode_item(uuid=req_id, ok=True, result=result)
    except (TypeError, ValueError) as exc:
        error = NotSerializableError(atom, "the result", f"{exc} (replies from workers are JSON)")
        return failure_item(req_id, Failure.from_exception(error))


def failure_item(req_id: str, failure: Failure) -> bytes:
    return p.encode_item(uuid=req_id, ok=False, failure=failure.to_dict())


def revert_extras(req: dict[str, Any]) -> dict[str, Any]:
    """``result`` and ``flow_failures`` of a revert request, rebuilt; InvalidMessageError if malformed."""
    extras: dict[str, Any] = {}
    try:
        if "result" in req:
            envelope = req["result"]
            extras["result"] = (
                Failure.from_dict(envelope["failure"]) if "failure" in envelope else envelope["value"]
            )
        if "flow_failures" in req:
            extras["flow_failures"] = {n: Failure.from_dict(d) for n, d in req["flow_failures"].items()}
    except FlowkitError as exc:
        raise InvalidMessageError(f"request {req['uuid']}: {exc}") from None
    return extras
