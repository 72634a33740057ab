"""The worker wire protocol: what is accepted, what is refused (and why), and what survives a round trip."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from flowkit.exceptions import InvalidMessageError, NoWorkerAvailable, RequestTimeout
from flowkit.failure import Failure
from flowkit.workers import protocol as p
from flowkit.workers import topology


def request(**over: Any) -> dict[str, Any]:
    data = {
        "protocol": 1,
        "type": "request",
        "uuid": "u-1",
        "task": "pkg.mod.Task",
        "atom": "a1",
        "action": "execute",
        "arguments": {"x": 1},
    }
    data.update(over)
    return data


def failure_dict() -> dict[str, Any]:
    try:
        raise ValueError("bad value")
    except ValueError:
        return Failure().to_dict()


VALID = [
    request(),
    request(action="revert", result={"value": [1, 2]}, flow_failures={"b": failure_dict()}),
    request(action="revert", result={"failure": failure_dict()}, atom_uuid="x-1"),
    {"protocol": 1, "type": "running", "uuid": "u", "worker": "w"},
    {"protocol": 1, "type": "progress", "uuid": "u", "worker": "w", "progress": 0.5},
    {"protocol": 1, "type": "result", "uuid": "u", "worker": "w", "ok": True, "result": None},
    {"protocol": 1, "type": "result", "uuid": "u", "worker": "w", "ok": False, "failure": failure_dict()},
    {
        "protocol": 1,
        "type": "notify",
        "worker": "w",
        "topic": "t",
        "tasks": ["a.B"],
        "threads": 4,
        "heartbeat": 1.0,
        "running": [],
    },
    {"protocol": 1, "type": "discover"},
    request(extra_field_from_a_newer_minor="ignored"),
]


@pytest.mark.parametrize("message", VALID, ids=lambda m: str(m.get("type")))
def test_valid_messages_pass_and_round_trip(message: dict[str, Any]) -> None:
    fields = {k: v for k, v in message.items() if k not in ("protocol", "type")}
    body = p.encode(message["type"], **fields)
    assert p.decode(body, p.CONTENT_TYPE) == message


INVALID = [
    ("not an object", [1, 2], "JSON object"),
    ("no protocol", {k: v for k, v in request().items() if k != "protocol"}, "protocol version None"),
    ("newer protocol", request(protocol=2), "protocol version 2"),
    ("bool protocol", request(protocol=True), "protocol version True"),
    ("unknown type", request(type="explode"), "message type 'explode'"),
    ("missing uuid", {k: v for k, v in request().items() if k != "uuid"}, "missing field 'uuid'"),
    ("empty task", request(task=""), "field 'task' must be a non-empty str"),
    ("bad action", request(action="delete"), "field 'action' must be one of execute, revert"),
    ("arguments not a dict", request(arguments=[1]), "field 'arguments' must be dict"),
    ("bad result envelope", request(action="revert", result={"x": 1}), "field 'result'"),
    ("bad failures", request(flow_failures={"a": 1}), "field 'flow_failures'"),
    (
        "progress out of range",
        {"protocol": 1, "type": "progress", "uuid": "u", "worker": "w", "progress": 1.5},
        "between 0 and 1",
    ),
    (
        "progress is bool",
        {"protocol": 1, "type": "progress", "uuid": "u", "worker": "w", "progress": True},
        "must be a number",
    ),
    (
        "ok without result",
        {"protocol": 1, "type": "result", "uuid": "u", "worker": "w", "ok": True, "failure": {}},
        '"result"',
    ),
    (
        "notify tasks not strs",
        {
            "protocol": 1,
            "type": "notify",
            "worker": "w",
            "topic": "t",
            "tasks": [1],
            "threads": 1,
            "heartbeat": 1,
            "running": [],
        },
        "field 'tasks'",
    ),
]


@pytest.mark.parametrize(("label", "data", "reason"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_messages_are_refused_with_their_reason(label: str, data: Any, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=None) as err:
        p.decode(json.dumps(data), p.CONTENT_TYPE)
    assert reason in str(err.value)


def test_only_json_bodies_are_accepted() -> None:
    with pytest.raises(InvalidMessageError, match="content type 'application/x-python-serialize'"):
        p.decode(pickle.dumps(request()), "application/x-python-serialize")
    with pytest.raises(InvalidMessageError, match="not JSON"):
        p.decode(b"{nope", p.CONTENT_TYPE)
    with pytest.raises(InvalidMessageError, match="not JSON"):
        p.decode(b"\xff\xfe", p.CONTENT_TYPE)


def test_expected_types_are_enforced() -> None:
    body = p.encode(p.DISCOVER)
    with pytest.raises(InvalidMessageError, match="not one of request"):
        p.decode(body, p.CONTENT_TYPE, (p.REQUEST,))


@pytest.mark.parametrize("value", [1, "s", None, True, 1.5, [1, [2]], (1, "two"), {"a": {"b": [None]}}])
def test_check_json_accepts_plain_data(value: Any) -> None:
    p.check_json(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [({1, 2}, "set"), ({1: "a"}, "key 1"), (float("nan"), "nan"), (b"x", "bytes"), ([object()], "object")],
)
def test_check_json_refuses_what_would_not_come_back_the_same(value: Any, error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        p.check_json(value)


def test_failures_survive_the_wire() -> None:
    """A failure of a flowkit error type comes back as that type, with its fields."""
    original = Failure.from_exception(NoWorkerAvailable("pkg.T", ["a", "b"], 2.0))
    body = p.encode(p.RESULT, uuid="u", worker="w", ok=False, failure=original.to_dict())
    back = Failure.from_dict(p.decode(body, p.CONTENT_TYPE)["failure"])
    assert back == original
    assert isinstance(back.exception, NoWorkerAvailable)
    assert back.exception.topics == ["a", "b"]
    timeout = Failure.from_dict(Failure.from_exception(RequestTimeout("too slow")).to_dict())
    assert isinstance(timeout.exception, RequestTimeout)


def test_topology_names() -> None:
    assert topology.task_queue("fk", "hv", "pkg.T") == "fk.hv.pkg.T"
    assert topology.task_key("hv", "pkg.T") == "hv.pkg.T"
    assert [e.name for e in topology.exchanges("fk")] == ["fk", "fk.notify", "fk.discover"]
    assert [e.type for e in topology.exchanges("fk")] == ["direct", "fanout", "fanout"]


def test_batches_carry_whole_messages_built_from_their_items() -> None:
    items = [
        p.encode_item(**{k: v for k, v in request(uuid=f"u{i}").items() if k not in ("protocol", "type")})
        for i in range(3)
    ]
    batch = p.decode(p.batch(p.REQUESTS, items), p.CONTENT_TYPE, (p.REQUESTS,))
    assert p.items(batch) == [request(uuid=f"u{i}") for i in range(3)]
    assert p.decode(p.single(p.REQUEST, items[0]), p.CONTENT_TYPE) == request(uuid="u0")
    results = p.batch(p.RESULTS, [p.encode_item(uuid="u0", ok=True, result=[1])], worker="w")
    assert p.items(p.decode(results, p.CONTENT_TYPE)) == [
        {"protocol": 1, "type": "result", "uuid": "u0", "worker": "w", "ok": True, "result": [1]}
    ]


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ({"type": "requests", "requests": []}, "non-empty list"),
        ({"type": "requests", "requests": [request(), "x"]}, "non-empty list of JSON objects"),
        ({"type": "requests", "requests": [request(), request(action="run")]}, "'action'"),
        ({"type": "results", "worker": "w", "results": [{"uuid": "u", "ok": True, "failure": {}}]}, "result"),
        # the usual items' quick test lets none of these through (each is checked in full)
        ({"type": "requests", "requests": [request(uuid="")]}, "'uuid'"),
        ({"type": "requests", "requests": [request(task=7)]}, "'task'"),
        ({"type": "requests", "requests": [request(arguments=[1])]}, "'arguments'"),
        ({"type": "requests", "requests": [request(flow="")]}, "'flow'"),
        ({"type": "requests", "requests": [request(job=None)]}, "'job'"),
        ({"type": "requests", "requests": [{**request(), "atom": None}]}, "'atom'"),
        ({"type": "requests", "requests": [request(timeout=-1)]}, "'timeout'"),
        ({"type": "results", "worker": "w", "results": [{"uuid": "", "ok": True, "result": 1}]}, "'uuid'"),
        ({"type": "results", "worker": "w", "results": [{"uuid": "u", "ok": 1, "result": 1}]}, "'ok'"),
        ({"type": "results", "worker": "w", "results": [{"uuid": "u", "ok": False}]}, "failure"),
    ],
)
def test_a_batch_with_one_bad_item_is_refused_whole(batch: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidMessageError, match=problem):
        p.items(p.decode(json.dumps({"protocol": 1, **batch}), p.CONTENT_TYPE))


@pytest.mark.parametrize("timeout", [None, 2.5, 3])
def test_a_plain_execute_is_written_out_as_the_encoder_writes_it(timeout: float | None) -> None:
    import uuid

    from flowkit.atom import class_name
    from flowkit.context import AtomContext
    from flowkit.workers.request import encode_request, request_ids
    from tests import worker_tasks as wt

    atom = wt.Noop(name='n"1\u00e9')
    ctx = AtomContext(atom.name, "au-1", None)
    ids = {"flow": "f-1", "job": "j-1"}
    body, req_id = encode_request(atom, "execute", {}, ctx, timeout, ids, "r-1")
    fields: dict[str, Any] = {"atom_uuid": "au-1", **ids}
    if timeout is not None:
        fields["timeout"] = timeout
    general = p.encode_item(
        uuid="r-1", task=class_name(atom), atom=atom.name, action="execute", arguments={}, **fields
    )
    assert req_id == "r-1" and json.loads(body) == json.loads(general)
    made = request_ids()
    first, second = next(made), next(made)
    assert uuid.UUID(first) and uuid.UUID(second) and first != second and first[:24] == second[:24]
