"""The wire protocol between engines and workers: versioned JSON messages, validated on receipt.

Why JSON and a hand-written schema: a message comes from another process, maybe another machine, maybe
another version of flowkit. Pickle would let any sender run code on the receiver; JSON carries data only.
Every message is checked against the schema of its ``type`` before anything acts on it, and a message
that fails is refused with the reason, never half-used. Unknown extra fields are ignored, so that a minor
addition does not break older peers; a different ``protocol`` number is refused.

Messages (content type ``application/json``; ``"protocol": 1`` and ``"type"`` in each):

- ``request`` (engine -> a task queue): ``uuid``, ``task`` (the class path), ``atom`` (the atom's name),
  ``atom_uuid`` (its stable id, optional), ``action`` (``execute`` | ``revert``), ``arguments``; for
  revert, ``result`` (``{"value": ...}`` or ``{"failure": {...}}``) and ``flow_failures`` (atom name ->
  failure dict) when the task takes them; ``timeout`` (seconds, optional): the worker abandons the call
  after that long (see :mod:`flowkit.workers.worker`); ``flow`` (the uuid of the flow detail the atom
  belongs to) and ``job`` (the uuid of the job whose run it is, when a conductor runs it), both optional,
  only for the worker's per-atom log lines (:mod:`flowkit.workers.atom_log`).
  AMQP properties: ``reply_to`` (the engine's queue) and ``correlation_id`` (= ``uuid``).
- ``running``, ``progress`` (``progress`` 0.0-1.0), ``result`` (``ok``, then ``result`` or ``failure``;
  ``redelivered: true`` when the worker refused a redelivered copy: the worker that had it may still
  be running it) (worker -> the request's ``reply_to``), each with ``uuid`` and ``worker``.
  ``running`` is sent only once a task has run for a little while (20 ms), so a short task costs two
  messages, not three.
- ``event`` (worker -> the request's ``reply_to``): ``uuid``, ``worker``, ``event`` and ``details`` (a
  JSON object): an event the task sent on its own ``notifier`` while it ran (progress goes as
  ``progress``); the engine hands it to the notifier of its copy of the task, as TaskFlow does. An
  engine older than this message drops it with a warning.
- ``notify`` (worker -> engines, every heartbeat and in answer to ``discover``): ``worker``, ``topic``,
  ``tasks``, ``threads``, ``heartbeat`` (seconds between notifies) and ``running`` (request uuids it is
  running now: a request an engine thinks is running there, but which is not listed, lost its reply),
  and ``stuck`` (optional, default 0): threads held by abandoned calls, which engines do not count as
  capacity; ``async_slots`` (optional, default 0): async requests it takes besides its threads;
  ``started`` (optional): when the worker started, seconds since the epoch (``flowkit fleet``). Engines
  send a worker's topic only as many requests as its live workers have free threads (async requests: free
  async slots).
- ``discover`` (engine -> every worker, with ``reply_to``): "tell me who you are now".
- ``requests`` (engine -> a task queue): ``requests``, a list of ``request`` objects (each without
  ``protocol`` and ``type``; every one for the same task, with the same ``timeout``), ``reply_to`` as
  for one request (``correlation_id`` unset). Sent only to a task queue whose live workers all said
  ``batch`` in their notifies, at most that many (and no more than their threads, or four times that
  where calls come back quick: see :mod:`flowkit.workers.seats`) per message.
- ``results`` (worker -> the ``reply_to`` of a ``requests`` message): ``worker`` and ``results``, a
  list of ``result`` objects (each without ``protocol``, ``type`` and ``worker``). Sent only to an
  engine that sent a ``requests`` message; answers to single requests stay single ``result`` messages.
- ``notify`` also carries ``batch`` (optional, default 1): the most requests the worker takes in one
  ``requests`` message.

Why batches: on two cores the engine, the workers and RabbitMQ share the CPU, and each AMQP message
costs all three (a kombu publish, the broker's routing, a frame read, an acknowledgement). When many
calls are ready at once, one message carrying several costs about what one carrying one does. The
optional fields keep older peers working: an older worker never says ``batch``, so it is sent single
requests; an older engine never sends ``requests``, so it gets single results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from flowkit.exceptions import InvalidMessageError

PROTOCOL = 1
CONTENT_TYPE = "application/json"

REQUEST = "request"
RUNNING = "running"
PROGRESS = "progress"
EVENT = "event"
RESULT = "result"
NOTIFY = "notify"
DISCOVER = "discover"
REQUESTS = "requests"
RESULTS = "results"
ACTIONS = ("execute", "revert")

Check = Callable[[Any], str | None]
"""A field check: None when the value is fine, else what is wrong with it."""


def _is(*types: type) -> Check:
    names = " or ".join(t.__name__ for t in types)

    def check(value: Any) -> str | None:
        if isinstance(value, bool) and bool not in types:
            return f"must be {names}, got bool"
        return None if isinstance(value, types) else f"must be {names}, got {type(value).__name__}"

    return check


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"must be a non-empty str, got {value!r}"[:200]
    return None


def _number(lo: float, hi: float) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"must be a number, got {type(value).__name__}"
        return None if lo <= value <= hi else f"must be between {lo:g} and {hi:g}, got {value!r}"

    return check


def _one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"


def _texts(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return "must be a list of non-empty str"
    return None


def _objects(value: Any) -> str | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        return "must be a non-empty list of JSON objects"
    return None


def _envelope(value: Any) -> str | None:
    if not isinstance(value, dict) or len(value) != 1 or not ({"value", "failure"} & value.keys()):
        return 'must be {"value": ...} or {"failure": {...}}'
    return _is(dict)(value["failure"]) if "failure" in value else None


def _failures(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        return "must map atom names to failure dicts"
    return None


# type -> field -> (check, required)
SCHEMAS: dict[str, dict[str, tuple[Check, bool]]] = {
    REQUEST: {
        "uuid": (_text, True),
        "task": (_text, True),
        "atom": (_text, True),
        "atom_uuid": (_text, False),
        "action": (_one_of(*ACTIONS), True),
        "arguments": (_is(dict), True),
        "result": (_envelope, False),
        "flow_failures": (_failures, False),
        "timeout": (_number(0.001, 1e9), False),
        "flow": (_text, False),
        "job": (_text, False),
    },
    RUNNING: {"uuid": (_text, True), "worker": (_text, True)},
    PROGRESS: {"uuid": (_text, True), "worker": (_text, True), "progress": (_number(0.0, 1.0), True)},
    EVENT: {
        "uuid": (_text, True),
        "worker": (_text, True),
        "event": (_text, True),
        "details": (_is(dict), True),
    },
    RESULT: {
        "uuid": (_text, True),
        "worker": (_text, True),
        "ok": (_is(bool), True),
        "result": (lambda v: None, False),
        "failure": (_is(dict), False),
        "redelivered": (_is(bool), False),
    },
    NOTIFY: {
        "worker": (_text, True),
        "topic": (_text, True),
        "tasks": (_texts, True),
        "threads": (_number(1, 1 << 16), True),
        "heartbeat": (_number(0.01, 3600.0), True),
        "running": (_texts, True),
        "stuck": (_number(0, 1 << 16), False),
        "async_slots": (_number(0, 1 << 20), False),
        "started": (_number(0, 1e12), False),
        "batch": (_number(1, 1 << 16), False),
    },
    DISCOVER: {},
    REQUESTS: {"requests": (_objects, True)},
    RESULTS: {"worker": (_text, True), "results": (_objects, True)},
}
BATCHED = {REQUESTS: REQUEST, RESULTS: RESULT}
"""A batch type -> the type of its items (each validated as one of those, see :func:`items`)."""


def validate(data: Any, expect: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``data`` when it is a valid message (of one of the ``expect`` types); else InvalidMessageError."""
    if not isinstance(data, dict):
        raise InvalidMessageError(f"a message must be a JSON object, got {type(data).__name__}")
    version = data.get("protocol")
    if version != PROTOCOL or isinstance(version, bool):
        raise InvalidMessageError(f"protocol version {version!r} is not understood (this reads {PROTOCOL})")
    kind = data.get("type")
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None or (expect is not None and kind not in expect):
        wanted = ", ".join(expect or SCHEMAS)
        raise InvalidMessageError(f"message type {kind!r} is not one of {wanted}")
    for field, (check, required) in schema.items():
        if field not in data:
            if required:
                raise InvalidMessageError(f"{kind} message is missing field {field!r}")
            continue
        problem = check(data[field])
        if problem:
            raise InvalidMessageError(f"{kind} message field {field!r} {problem}")
    if kind == RESULT and ("failure" in data) == data["ok"]:
        raise InvalidMessageError('result message needs "result" when ok, "failure" when not')
    return data


def decode(
    body: bytes | str, content_type: str | None, expect: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Parse and validate one message body; only JSON is accepted."""
    if content_type != CONTENT_TYPE:
        raise InvalidMessageError(f"content type {content_type!r} refused: only {CONTENT_TYPE} is accepted")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessageError(f"body is not JSON: {exc}") from None
    return validate(data, expect)


def items(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a validated ``requests`` or ``results`` batch carries, each validated as a
    ``request`` or ``result`` (a ``result`` gets the batch's ``worker``); InvalidMessageError as soon
    as one is not valid: a batch is used whole or not at all."""
    kind = BATCHED[batch["type"]]
    extra: dict[str, Any] = {"protocol": PROTOCOL, "type": kind}
    if kind == RESULT:
        extra["worker"] = batch["worker"]
    key = "requests" if kind == REQUEST else "results"
    plain = _plain_request if kind == REQUEST else _plain_result
    return [{**item, **extra} if plain(item) else validate({**item, **extra}, (kind,)) for item in batch[key]]


_PLAIN_REQUEST = frozenset(
    ("protocol", "type", "uuid", "task", "atom", "action", "arguments", "atom_uuid", "flow", "job")
)


def _plain_request(item: dict[str, Any]) -> bool:
    """Whether a batch's ``request`` item is valid by the quick test of the usual one (what
    :func:`validate` checks, without its walk over the schema): True only when it surely is; False
    sends it through :func:`validate` (anything else: a revert, a timeout, an unknown field)."""
    if not item.keys() <= _PLAIN_REQUEST:
        return False
    if item.get("action") not in ACTIONS or type(item.get("arguments")) is not dict:
        return False
    for field in ("uuid", "task", "atom"):
        value = item.get(field)
        if type(value) is not str or not value:
            return False
    for field in ("atom_uuid", "flow", "job"):
        if field in item:
            value = item[field]
            if type(value) is not str or not value:
                return False
    return True


def _plain_result(item: dict[str, Any]) -> bool:
    """:func:`_plain_request` for a ``result`` item: a success with a uuid (its value is any JSON)."""
    if item.get("ok") is not True or "failure" in item or "redelivered" in item:
        return False
    value = item.get("uuid")
    return type(value) is str and value != ""


def encode_item(**fields: Any) -> bytes:
    """One item of a batch (or, with :func:`single`, one message) as JSON bytes."""
    return json.dumps(fields, allow_nan=False).encode()


def head(kind: str, **fields: Any) -> bytes:
    """The start of a message of type ``kind`` with ``fields``: ``head(...) + item[1:]`` is the whole
    message of one item from :func:`encode_item` (built from the bytes, not encoded again)."""
    return json.dumps({"protocol": PROTOCOL, "type": kind, **fields}).encode()[:-1] + b", "


def single(kind: str, item: bytes, **fields: Any) -> bytes:
    """The whole message of type ``kind`` made of one item from :func:`encode_item` and ``fields``."""
    return head(kind, **fields) + item[1:]


def batch(kind: str, items_: list[bytes], **fields: Any) -> bytes:
    """A ``requests`` or ``results`` message carrying ``items_`` (from :func:`encode_item`)."""
    key = "requests" if kind == REQUESTS else "results"
    head = json.dumps({"protocol": PROTOCOL, "type": kind, **fields}).encode()[:-1]
    return b"".join((head, b', "', key.encode(), b'": [', b", ".join(items_), b"]}"))


def encode(kind: str, **fields: Any) -> bytes:
    """One message as JSON bytes; TypeError/ValueError when a field is not plain JSON (no NaN either)."""
    return json.dumps({"protocol": PROTOCOL, "type": kind, **fields}, allow_nan=False).encode()


def check_json(value: Any) -> None:
    """Raise TypeError/ValueError unless ``value`` is plain JSON (dicts with str keys, lists, scalars).

    Why stricter than ``json.dumps``: it would quietly turn int keys into str (and accept NaN), and a
    worker would then run with arguments that differ from the ones the flow gave. Tuples are allowed
    and arrive as lists, which is what a ``provides`` tuple needs.
    """
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        return
    if isinstance(value, list | tuple):  # a tuple arrives as a list, as in every JSON library
        for item in value:
            check_json(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict key {key!r} is not a str")
            check_json(item)
        return
    raise TypeError(f"{type(value).__name__} {_short(value)} is not JSON")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
