"""The worker-based engine end to end over kombu's in-memory transport: no broker needed.

A :class:`~flowkit.workers.Worker` runs on a thread of the test process; the engine talks to it through
``memory://``, whose queues are shared by every connection of one process. Each test uses its own
exchange name, so nothing leaks between tests.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kombu
import pytest
from click.testing import CliRunner

from flowkit import FunctorTask, LinearFlow, Task, UnorderedFlow, engines, notifier, retry
from flowkit.exceptions import (
    InvalidFlowError,
    NotSerializableError,
    NoWorkerAvailable,
    RequestTimeout,
    WorkerError,
)
from flowkit.persistence import backends
from flowkit.states import AtomState
from flowkit.workers import Worker, WorkerDispatcher, protocol, resolve_tasks, topology
from flowkit.workers.cli import main as worker_main
from flowkit.workers.discovery import WorkerInfo
from flowkit.workers.request import RUNNING, Request
from tests import worker_tasks as wt
from tests.support import tasks
from tests.support.background import Background
from tests.support.dispatchers import worker_options
from tests.support.workers import TASK_MODULES, memory_worker

URL = "memory://"
OPTIONS = {"polling_interval": 0.001}
TOPIC = "mem"


@pytest.fixture
def exchange() -> str:
    return f"fk-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def worker(exchange: str) -> Iterator[Worker]:
    with memory_worker(exchange, TOPIC, TASK_MODULES) as w:
        yield w


def load(flow: Any, exchange: str, timeout: float = 5.0, **kwargs: Any) -> engines.Engine:
    return engines.load(flow, **worker_options(exchange, TOPIC, timeout), **kwargs)


def test_flow_runs_on_the_worker(worker: Worker, exchange: str) -> None:
    flow = LinearFlow("f").add(tasks.Add(), tasks.Multiply(), wt.Pair())
    engine = load(flow, exchange, store={"x": 1, "y": 2})
    engine.run()
    assert engine.storage.fetch_all() == {
        "x": 1,
        "y": 2,
        "sum": 3,
        "product": 30,
        "first": 1,
        "second": "two",
    }
    seen = engine._dispatcher.workers  # type: ignore[attr-defined]
    assert seen[worker.id].topic == TOPIC and "tests.support.tasks.Add" in seen[worker.id].tasks


def test_revert_gets_result_and_flow_failures_across_the_wire(
    worker: Worker, exchange: str, tmp_path: Path
) -> None:
    flow = LinearFlow("f").add(wt.Remember(name="keep"), wt.Explode(name="boom"))
    engine = load(flow, exchange, store={"marker_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="boom in boom"):  # the task's own exception, rebuilt
        engine.run()
    assert (tmp_path / "reverted-keep").read_text() == "made-by-keep|['boom']|['builtins.ValueError']"
    assert "ValueError" in (tmp_path / "reverted-boom").read_text()  # its own Failure as result
    assert engine.storage.get_atom_state("keep") is AtomState.REVERTED


def test_progress_reaches_listeners(worker: Worker, exchange: str) -> None:
    engine = load(UnorderedFlow("f").add(tasks.Progressing(name="p")), exchange)
    seen: list[float] = []
    engine.atom_notifier.register(
        notifier.EVENT_UPDATE_PROGRESS, lambda _state, details: seen.append(details["progress"])
    )
    engine.run()
    assert seen == [0.25, 0.5, 1.0]


def test_argument_that_is_not_json_fails_the_atom_without_sending(worker: Worker, exchange: str) -> None:
    engine = load(LinearFlow("f").add(wt.Echo(name="echo")), exchange, store={"value": {1, 2}})
    with pytest.raises(NotSerializableError, match="the arguments of atom 'echo'") as err:
        engine.run()
    assert err.value.atom == "echo"


def test_result_that_is_not_json_fails_the_atom(worker: Worker, exchange: str) -> None:
    engine = load(LinearFlow("f").add(wt.ReturnsSet(name="sets")), exchange)
    with pytest.raises(NotSerializableError, match="the result of atom 'sets'"):
        engine.run()


def test_no_worker_fails_with_the_task_and_topics(exchange: str) -> None:
    flow = LinearFlow("f").add(wt.Noop(name="lonely"))
    engine = engines.load(
        flow,
        engine="worker-based",
        transport=URL,
        exchange=exchange,
        topics=["nobody", "nobody-else"],
        transition_timeout=0.3,
        transport_options=OPTIONS,
    )
    started = time.monotonic()
    with pytest.raises(NoWorkerAvailable) as err:
        engine.run()
    assert time.monotonic() - started < 3
    assert err.value.task == "tests.worker_tasks.Noop"
    assert "'nobody', 'nobody-else'" in str(err.value) and "tests.worker_tasks.Noop" in str(err.value)


def test_malformed_messages_are_rejected_and_the_worker_keeps_serving(
    worker: Worker, exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = topology.task_key(TOPIC, "tests.support.tasks.Add")
    bad = [
        (b"this is not json", protocol.CONTENT_TYPE, {}),
        (b"\x80\x04K\x01.", "application/x-python-serialize", {}),
        (
            b'{"protocol": 1, "type": "request"}',
            protocol.CONTENT_TYPE,
            {"reply_to": "x", "correlation_id": "c"},
        ),
        (b'{"protocol": 99, "type": "request"}', protocol.CONTENT_TYPE, {}),
    ]
    with kombu.Connection(URL, transport_options=OPTIONS) as conn:
        producer = kombu.Producer(conn.channel())
        for body, content_type, props in bad:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=key,
                content_type=content_type,
                content_encoding="binary",
                **props,
            )
    engine = load(LinearFlow("f").add(tasks.Add()), exchange, store={"x": 2, "y": 3})
    engine.run()
    assert engine.storage.fetch("sum") == 5
    reasons = [r.getMessage() for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(reasons) == 4, reasons
    assert any("not JSON" in r for r in reasons)
    assert any("content type 'application/x-python-serialize' refused" in r for r in reasons)
    assert any("missing field 'uuid'" in r for r in reasons)
    assert any("protocol version 99" in r for r in reasons)


def test_tasks_that_cannot_run_remotely_fail_at_once(worker: Worker, exchange: str) -> None:
    engine = load(LinearFlow("f").add(FunctorTask(lambda: 1, name="fn")), exchange)
    with pytest.raises(WorkerError, match="atom 'fn' cannot run on a worker"):
        engine.run()


def test_persistence_works_unchanged(worker: Worker, exchange: str) -> None:
    backend = backends.fetch("memory://")
    engine = load(
        LinearFlow("f").add(tasks.Add(name="add")), exchange, store={"x": 4, "y": 5}, backend=backend
    )
    engine.run()
    with backend.get_connection() as conn:
        detail = next(iter(conn.get_logbooks())).find(engine.storage.flow_uuid)
    assert detail is not None and {a.name: a.results for a in detail} == {"add": 9}


def test_stop_lets_the_running_task_finish(worker: Worker, exchange: str, tmp_path: Path) -> None:
    engine = load(
        LinearFlow("f").add(wt.Sleepy(name="nap")),
        exchange,
        store={"marker_dir": str(tmp_path), "seconds": 0.5},
    )
    run = Background(engine.run, name="run")
    deadline = time.monotonic() + 5
    while not (tmp_path / "started-nap").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    run.wait(10)
    assert not run.errors and engine.storage.fetch("slept") == 0.5


def test_hung_call_is_abandoned_retried_and_its_late_result_discarded(
    worker: Worker, exchange: str, tmp_path: Path
) -> None:
    flow = LinearFlow("hang", retry=retry.Times(attempts=2)).add(wt.Hang(name="stuck", timeout=0.3))
    engine = load(flow, exchange, store={"marker_dir": str(tmp_path), "hang": 1.5})
    started = time.monotonic()
    engine.run()
    assert time.monotonic() - started < 1.5  # did not wait for the hung call
    assert engine.storage.fetch("hung") == os.getpid()
    assert worker.abandoned == 1 and worker.stuck == 0  # it runs on a spare thread
    deadline = time.monotonic() + 5
    while worker.abandoned and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.abandoned == 0  # it returned; its result went nowhere


# -- pieces, without a broker ---------------------------------------------------------------------------


class FakeMessage:
    def __init__(self, body: bytes, redelivered: bool = False, **props: Any) -> None:
        self.body = body
        self.content_type = protocol.CONTENT_TYPE
        self.properties = props
        self.delivery_info = {"redelivered": redelivered, "routing_key": "k"}


def redelivered_add(arguments: dict[str, Any]) -> FakeMessage:
    """Request r1 (``tests.support.tasks.Add`` with ``arguments``) as the broker hands it out again after
    a lost connection: the redelivery tests judge what a worker does with such a copy."""
    body = protocol.encode(
        protocol.REQUEST,
        uuid="r1",
        task="tests.support.tasks.Add",
        atom="add",
        action="execute",
        arguments=arguments,
    )
    return FakeMessage(body, redelivered=True, reply_to="engine-q", correlation_id="r1")


def test_redelivered_request_is_refused_not_run_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    w = Worker(URL, "unused", TOPIC, [tasks.Add])
    sent: list[tuple[bytes, str]] = []
    acked: list[Any] = []

    def publish(body: bytes, exchange: str, key: str, **props: Any) -> bool:
        sent.append((body, key))
        return True

    monkeypatch.setattr(w._link, "publish", publish)
    monkeypatch.setattr(w._link, "ack", lambda message, gen, reject=False: acked.append((message, reject)))
    message = redelivered_add({"x": 1, "y": 2})
    w._on_request(message)
    w._drain_inbox()
    assert acked == [(message, False)]
    reply = protocol.decode(sent[0][0], protocol.CONTENT_TYPE)
    assert sent[0][1] == "engine-q" and reply["ok"] is False
    assert "redelivered" in reply["failure"]["exception_str"]
    assert not w._jobs  # nothing was run


def test_lost_reply_and_dead_worker_fail_running_requests() -> None:
    d = WorkerDispatcher(URL, "unused", [TOPIC], transition_timeout=30)
    d._registry.workers["w1"] = WorkerInfo("w1", TOPIC, frozenset({"t.T"}), 1, 0.1)
    d._seats.take(TOPIC, "t.T")
    d._seats.take(TOPIC, "t.T")
    for rid in ("lost", "fine"):
        d._requests[rid] = Request(
            rid, 0, "a", "t.T", "execute", b"", time.monotonic(), stage=RUNNING, topic=TOPIC, worker="w1"
        )
    d._on_notify(
        {
            "worker": "w1",
            "topic": TOPIC,
            "tasks": ["t.T"],
            "threads": 1,
            "heartbeat": 0.1,
            "running": ["fine"],
        }
    )
    _, _, ok, failure = d._done.popleft()
    assert not ok and failure.check(RequestTimeout) and "reply" in failure.exception_str
    d._registry.workers["w1"].last_seen -= 10  # silent for many heartbeats
    d._link = SimpleNamespace(down_since=None)  # type: ignore[assignment]
    d._check(time.monotonic())
    _, _, ok, failure = d._done.popleft()
    assert not ok and "stopped heartbeating" in failure.exception_str and not d._requests


def test_resolve_tasks_specs() -> None:
    found = resolve_tasks(["tests.support.tasks:Add,tests.support.tasks:Multiply", wt.Pair])
    assert found == [tasks.Add, tasks.Multiply, wt.Pair]
    everything = resolve_tasks(["tests.worker_tasks"])
    assert wt.SlowOnce in everything and all(c.__module__ == "tests.worker_tasks" for c in everything)
    with pytest.raises(WorkerError, match="cannot import module 'no_such_module'"):
        resolve_tasks(["no_such_module:X"])
    with pytest.raises(WorkerError, match="does not name a Task subclass"):
        resolve_tasks(["tests.worker_tasks:Path"])
    with pytest.raises(WorkerError, match="defines no Task subclass"):
        resolve_tasks(["json"])


def test_load_checks_its_options() -> None:
    flow = LinearFlow("f").add(wt.Noop())
    with pytest.raises(InvalidFlowError, match="transport"):
        engines.load(flow, engine="worker-based", topics=["t"])
    with pytest.raises(InvalidFlowError, match="topics"):
        engines.load(flow, engine="worker-based", transport=URL)
    with pytest.raises(InvalidFlowError, match="transition_timeout"):
        engines.load(flow, engine="worker-based", transport=URL, topics=["t"], transition_timeout=0)
    with pytest.raises(InvalidFlowError, match="no executor"):
        engines.load(flow, engine="worker-based", transport=URL, topics=["t"], executor="threads")


def test_cli_reports_bad_task_specs() -> None:
    result = CliRunner().invoke(worker_main, ["--transport", URL, "--topic", "t", "--tasks", "nope.nothing"])
    assert result.exit_code != 0 and "cannot import module 'nope.nothing'" in result.output


def test_unreachable_broker_fails_the_run_naming_it() -> None:
    flow = LinearFlow("f").add(wt.Noop())
    engine = engines.load(
        flow,
        engine="worker-based",
        transport="amqp://guest:secret@127.0.0.1:1//",
        topics=["t"],
        transition_timeout=0.5,
    )
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"cannot connect to the broker at amqp://guest:\*\*@127.0.0.1:1//"):
        engine.run()
    assert time.monotonic() - started < 5


def test_answers_are_sent_again_after_a_reconnect_and_to_a_redelivered_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a cut may have swallowed: every recent answer goes again, before anything else, and a
    redelivered copy of an answered request is answered again, not refused and not run."""
    w = Worker(URL, "unused", TOPIC, [tasks.Add])
    sent: list[tuple[str, bytes]] = []
    acked: list[Any] = []
    monkeypatch.setattr(
        w, "_link", SimpleNamespace(connected=True, generation=1, wake=lambda: None, owner=None)
    )
    w._link.publish = lambda body, exchange, key, **props: (
        sent.append((props["correlation_id"], body)) or True
    )
    w._link.ack = lambda message, gen, reject=False: acked.append(message)
    answer = protocol.encode(protocol.RESULT, uuid="r1", worker=w.id, ok=True, result=3)
    w._reconnected()  # the first connection: nothing to send again
    w._answers.add("r1", "engine-q", answer, time.monotonic())
    w._link.generation = 2
    w._reconnected()
    w._flush()
    assert sent == [("r1", answer)]
    copy = redelivered_add({})
    w._handle_request(copy, 2)
    assert sent == [("r1", answer), ("r1", answer)] and acked == [copy] and not w._jobs


class Gate(Task):
    """Blocks until ``OPEN`` is set, counting how many calls run at once."""

    OPEN = threading.Event()
    LOCK = threading.Lock()
    running = 0
    most = 0
    calls = 0

    def execute(self, n: int) -> int:
        with Gate.LOCK:
            Gate.running += 1
            Gate.calls += 1
            Gate.most = max(Gate.most, Gate.running)
        Gate.OPEN.wait(10)
        with Gate.LOCK:
            Gate.running -= 1
        return n


def test_a_batch_runs_no_more_calls_than_threads_and_is_acknowledged_once_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``requests`` message may bring more calls than threads: the rest wait in the worker, a call
    that waits past its timeout is answered with AtomTimeout and never runs, the answers go back in
    ``results`` messages, and the message is acknowledged once, after its last answer."""
    w = Worker(URL, "unused", TOPIC, [Gate], threads=2)
    published: list[tuple[bytes, dict[str, Any]]] = []
    acked: list[Any] = []
    link = SimpleNamespace(connected=True, generation=1, wake=lambda: None, owner=None)
    link.publish = lambda body, exchange, key, **props: published.append((body, props)) or True
    link.ack = lambda message, gen, reject=False: acked.append((message, reject))
    monkeypatch.setattr(w, "_link", link)
    w._pool = ThreadPoolExecutor(4)
    path = f"{Gate.__module__}.Gate"
    items = [
        protocol.encode_item(uuid=f"r{i}", task=path, atom=f"a{i}", action="execute", arguments={"n": i})
        for i in range(4)
    ]
    items.append(
        protocol.encode_item(
            uuid="late", task=path, atom="late", action="execute", arguments={"n": 9}, timeout=0.2
        )
    )
    message = FakeMessage(protocol.batch(protocol.REQUESTS, items), reply_to="engine-q")
    Gate.OPEN.clear()
    try:
        w._on_request(message)
        w._drain_inbox()
        wait_for(lambda: Gate.running == 2)
        time.sleep(0.3)
        w._abandon_due(time.monotonic())  # "late" never got a thread: it times out where it waits
        late = protocol.decode(published[0][0], protocol.CONTENT_TYPE, (protocol.RESULT,))
        assert late["uuid"] == "late" and "AtomTimeout" in str(late["failure"]["exc_type_names"])
        assert not acked  # four calls still hold the message
        Gate.OPEN.set()
        deadline = time.monotonic() + 10
        while w._jobs and time.monotonic() < deadline:
            w._flush()
            time.sleep(0.01)
    finally:
        Gate.OPEN.set()
        w._pool.shutdown()
    assert Gate.most == 2 and Gate.calls == 4  # never more than its threads; "late" never ran
    answers = [
        item
        for body, props in published[1:]
        for item in protocol.items(protocol.decode(body, protocol.CONTENT_TYPE, (protocol.RESULTS,)))
    ]
    assert sorted(a["result"] for a in answers) == [0, 1, 2, 3] and all(a["ok"] for a in answers)
    assert all("correlation_id" not in props for _, props in published[1:])
    assert acked == [(message, False)]  # once, after the last answer


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
