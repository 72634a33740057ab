"""One call to a worker as the engine sees it: its stages, and the request message that carries it.

The wire format is in :mod:`flowkit.workers.protocol`; how requests move through the stages is in
:mod:`flowkit.workers.dispatcher`.
"""

from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flowkit.atom import Atom, class_name
from flowkit.context import AtomContext, ProgressSink
from flowkit.engines.dispatch import EXECUTE, NOT_STARTED, REVERT
from flowkit.exceptions import NotSerializableError, WorkerError
from flowkit.failure import Failure
from flowkit.task import FunctorTask
from flowkit.workers import protocol as p

WAITING, SENT, RUNNING = "waiting", "sent", "running"


@dataclass(eq=False)
class Request:
    """One call in flight: where it is, and since when."""

    uuid: str
    node: int
    atom_name: str
    task: str
    action: str
    body: bytes
    """The request as a batch item (:func:`~flowkit.workers.protocol.encode_item`); one message of its
    own is :meth:`message`."""
    submitted: float
    progress: ProgressSink | None = None
    timeout: float | None = None
    stage: str = WAITING
    topic: str = ""
    worker: str = ""
    sent: float = 0.0
    waited: float = 0.0
    """Sent: the last time it was seen waiting for a worker thread to come free (or when it was sent)."""
    deadline: float = math.inf
    """When its atom's timeout ends (from sending); infinite without one."""
    atom: Atom | None = None
    """The engine's copy of the atom: events the task sends while it runs go to its notifier."""
    refusal: Failure | None = None
    """A worker refused a redelivered copy while it was sent: held until ``unheard`` have spoken."""
    unheard: set[str] | None = None
    """The workers that might have had it, whose next heartbeat says whether one still does."""
    is_async: bool = False
    """Its task class has an ``async def`` action: it takes a worker's async slot, not a thread (its own
    seats and queue here; its own consumer on the worker)."""

    def message(self) -> bytes:
        """This request alone, as a ``request`` message."""
        return p.single(p.REQUEST, self.body)

    @property
    def lane(self) -> str:
        """What it queues and takes seats under: its task, apart for async calls."""
        return self.task + ASYNC_LANE if self.is_async else self.task


ASYNC_LANE = " (async)"


def request_ids() -> Iterator[str]:
    """Unique request uuids: a random one, then counting up from it in its last group.

    Why not ``uuid4()`` each: that reads the system's random source (a system call) for every call;
    one random start per engine run is as unique across engines (its first 80 bits stay random). Why
    not a ``uuid.UUID`` per id: building and formatting one costs more than the rest of the request."""
    start = str(uuid.uuid4())
    prefix, first = start[:24], int(start[24:], 16)
    mask = (1 << 48) - 1
    return (f"{prefix}{(first + n) & mask:012x}" for n in itertools.count())


def encode_request(
    atom: Atom,
    action: str,
    kwargs: dict[str, Any],
    ctx: AtomContext | None,
    timeout: float | None,
    ids: dict[str, str] | None = None,
    req_id: str | None = None,
) -> tuple[bytes, str]:
    """The request for one call as a batch item (see :meth:`Request.message`), and its uuid; a
    FlowkitError when it cannot go to a worker.

    ``ids`` (``{"flow": ..., "job": ...}``, either optional) go along for the worker's log lines;
    ``req_id`` is its uuid (a new random one without)."""
    task = task_name(atom)
    # A class of the program's own (__main__) is sent by that name: only workers started by this
    # same program serve it (as TaskFlow's examples run them, on threads), and the engine's topic
    # matching never offers it to another worker.
    if isinstance(atom, FunctorTask) or "<locals>" in task:
        raise WorkerError(
            f"atom {atom.name!r} cannot run on a worker: its class {task} must be a Task subclass "
            f"defined at the top level of an importable module (workers import it by that path)"
        )
    fields: dict[str, Any] = {"atom_uuid": ctx.atom_uuid} if ctx is not None else {}
    if timeout is not None:
        fields["timeout"] = timeout
    if ids:
        fields.update(ids)
    if req_id is None:
        req_id = str(uuid.uuid4())
    if action == EXECUTE and not kwargs:  # the usual call: nothing to check, no encoder run
        return _plain_item(req_id, task, atom.name, fields), req_id
    args = dict(kwargs)
    if action == REVERT:
        if "result" in args:
            result = args.pop("result")
            fields["result"] = (
                {"failure": result.to_dict()} if isinstance(result, Failure) else {"value": result}
            )
        if "flow_failures" in args:
            fields["flow_failures"] = {n: f.to_dict() for n, f in args.pop("flow_failures").items()}
    try:
        p.check_json(args)
        p.check_json(fields.get("result"))
    except (TypeError, ValueError) as exc:
        what = "the arguments" if "result" not in fields else "the arguments or result"
        raise NotSerializableError(atom.name, what, f"{exc} (requests to workers are JSON)") from None
    body = p.encode_item(uuid=req_id, task=task, atom=atom.name, action=action, arguments=args, **fields)
    return body, req_id


_text = json.encoder.encode_basestring_ascii
"""A str as a JSON string (C, ASCII-only as ``json.dumps``): the cost of one field, not of an encoder."""


def _plain_item(req_id: str, task: str, atom: str, fields: dict[str, Any]) -> bytes:
    """:func:`~flowkit.workers.protocol.encode_item` of an execute without arguments, written out:
    ``fields`` are str values (``atom_uuid``, ``flow``, ``job``) but ``timeout``, a finite number."""
    parts = [
        f'{{"uuid": {_text(req_id)}, "task": {_text(task)}, "atom": {_text(atom)}, '
        f'"action": "execute", "arguments": {{}}'
    ]
    for key, value in fields.items():
        text = _text(value) if isinstance(value, str) else json.dumps(value, allow_nan=False)
        parts.append(f", {_text(key)}: {text}")
    parts.append("}")
    return "".join(parts).encode()


_TASK_NAMES: dict[type, str] = {}


def task_name(atom: Atom) -> str:
    """:func:`~flowkit.atom.class_name` of ``atom``, worked out once per class (twice per call otherwise)."""
    cls = type(atom)
    name = _TASK_NAMES.get(cls)
    if name is None:
        name = _TASK_NAMES[cls] = class_name(atom)
    return name


def not_started(action: str) -> str:
    """An execute that never reached a worker has nothing to revert."""
    return NOT_STARTED if action == EXECUTE else action
