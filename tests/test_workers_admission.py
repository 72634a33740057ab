"""Unit tests of the worker-based engine's own logic, no broker: how many requests go out, what waits,
how a refusal of a redelivered copy is judged, what a worker remembers of its answers.

The dispatcher is driven through its message handlers with a stand-in link that records what it
publishes; the end-to-end behaviour is tested against RabbitMQ in ``test_workers_faults.py``.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from flowkit import LinearFlow, engines
from flowkit.atom import check_timeout
from flowkit.exceptions import AtomTimeout, InvalidFlowError, NoWorkerAvailable, WorkerError
from flowkit.failure import Failure
from flowkit.workers import WorkerDispatcher, protocol
from flowkit.workers.answers import RecentAnswers
from flowkit.workers.discovery import Registry
from flowkit.workers.request import RUNNING, SENT
from flowkit.workers.seats import DEEP_PIPELINE, PIPELINE
from tests import worker_tasks as wt

TOPIC = "unit"
TASK = "tests.worker_tasks.Noop"


def notify(worker: str, threads: int = 2, running: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "type": "notify",
        "worker": worker,
        "topic": TOPIC,
        "tasks": [TASK],
        "threads": threads,
        "heartbeat": 0.5,
        "running": list(running),
        **extra,
    }


class Wire:
    """Stands in for the dispatcher's Link: connected, and records what is published."""

    def __init__(self) -> None:
        self.sent: list[str] = []  # request uuids, in the order they were published
        self.batches: list[list[str]] = []  # the uuids of each ``requests`` message
        self.connected = True
        self.down_since = None
        self.generation = 1
        self.flush_ok = True  # False: the corked batch is lost with the connection

    def publish(self, body: bytes, exchange: str, key: str, **props: Any) -> bool:
        if "correlation_id" in props:
            self.sent.append(props["correlation_id"])
        else:  # a batch: one message, several requests
            message = protocol.decode(body, protocol.CONTENT_TYPE, (protocol.REQUESTS,))
            self.batches.append([r["uuid"] for r in protocol.items(message)])
            self.sent.extend(self.batches[-1])
        return True

    def cork(self) -> None:
        pass

    def flush(self) -> bool:
        return self.flush_ok


def dispatcher(timeout: float = 5.0, **kwargs: Any) -> tuple[WorkerDispatcher, Wire]:
    d = WorkerDispatcher("memory://", "unit", [TOPIC], transition_timeout=timeout, **kwargs)
    wire = Wire()
    d._link = wire  # type: ignore[assignment]
    return d, wire


def submit(d: WorkerDispatcher, n: int, **atom: Any) -> None:
    """Submit ``n`` calls, and send what may go as the engine's next ``wait`` does."""
    for i in range(n):
        d.submit(i, wt.Noop(name=f"n{i}", **atom), "execute", {})
    d._uncork()


def flush_waiting(d: WorkerDispatcher) -> None:
    d._flush_waiting(time.monotonic())
    d._uncork()


def test_only_what_the_workers_can_run_is_sent_the_rest_waits() -> None:
    d, wire = dispatcher()
    d._on_notify(notify("w1", threads=2))
    submit(d, 10)
    assert len(wire.sent) == 2 * PIPELINE
    assert sum(len(q) for q in d._waiting.values()) == 10 - 2 * PIPELINE
    first = d._requests[wire.sent[0]]
    d._on_message({"type": "running", "uuid": first.uuid, "worker": "w1"})  # a call that takes time
    d._on_message({"type": "result", "uuid": first.uuid, "worker": "w1", "ok": True, "result": None})
    flush_waiting(d)
    assert len(wire.sent) == 2 * PIPELINE + 1  # one answered, one more sent
    assert d._done.popleft()[2] is True


def test_a_topic_whose_calls_come_back_quick_gets_the_deep_pipeline_until_one_takes_time() -> None:
    d, wire = dispatcher()
    d._on_notify(notify("w1", threads=2, batch=64))
    submit(d, 20)
    assert len(wire.sent) == 2 * PIPELINE and [len(b) for b in wire.batches] == [2, 2]
    quick = wire.sent[0]
    d._on_message({"type": "result", "uuid": quick, "worker": "w1", "ok": True, "result": None})
    flush_waiting(d)
    # answered before it was announced running: four per thread, several per thread to a message
    assert len(wire.sent) == 2 * DEEP_PIPELINE + 1
    assert [len(b) for b in wire.batches] == [2, 2, 5]
    slow = wire.sent[1]
    d._on_message({"type": "running", "uuid": slow, "worker": "w1"})
    d._on_message({"type": "result", "uuid": slow, "worker": "w1", "ok": True, "result": None})
    for uuid in wire.sent[2:5]:  # quick ones, but one was announced running just now
        d._on_message({"type": "result", "uuid": uuid, "worker": "w1", "ok": True, "result": None})
    flush_waiting(d)
    assert len(wire.sent) == 2 * DEEP_PIPELINE + 1  # 4 in flight, over the shallow pipeline's 2 x 2
    assert len(d._requests) == 2 * DEEP_PIPELINE - 4


def test_a_burst_is_spread_over_one_message_per_worker_at_least() -> None:
    d, wire = dispatcher()
    d._seats.deep.add(TOPIC)
    d._on_notify(notify("w1", threads=4, batch=64))
    d._on_notify(notify("w2", threads=4, batch=64))
    submit(d, 6)  # one worker's threads could take them all; two share them
    assert [len(b) for b in wire.batches] == [3, 3]
    submit(d, 40)
    # 2 workers x 4 threads x DEEP_PIPELINE = 32 seats; up to 16 to a message
    assert sorted(len(b) for b in wire.batches[2:]) == [13, 13]


def test_stuck_threads_are_not_counted_as_capacity() -> None:
    d, wire = dispatcher()
    d._on_notify(notify("w1", threads=2, stuck=1))
    submit(d, 10)
    assert len(wire.sent) == 1 * PIPELINE
    d._on_notify(notify("w1", threads=2, stuck=2))  # every thread held by abandoned calls
    assert d._registry.capacity(TASK, time.monotonic()) == {}


def test_waiting_requests_do_not_time_out_while_busy_workers_are_alive() -> None:
    d, wire = dispatcher(timeout=0.2)
    d._on_notify(notify("w1", threads=1))
    submit(d, 5)
    sent = list(wire.sent)
    time.sleep(0.3)
    d._on_notify(notify("w1", threads=1, running=(sent[0],)))  # busy with the first
    d._check(time.monotonic())
    assert not d._done, d._done
    assert d._requests[sent[0]].stage == RUNNING and d._requests[sent[1]].stage == SENT


def test_waiting_requests_fail_once_no_live_worker_serves_them() -> None:
    d, _ = dispatcher(timeout=0.2)
    submit(d, 3)
    d._check(time.monotonic())
    time.sleep(0.3)
    d._check(time.monotonic())
    assert len(d._done) == 3
    assert all(f.check(NoWorkerAvailable) for _, _, _, f in d._done)


def test_a_call_past_its_timeout_fails_with_atom_timeout() -> None:
    d, wire = dispatcher(timeout=30)
    d._on_notify(notify("w1"))
    submit(d, 1, timeout=0.05)
    req = d._requests[wire.sent[0]]
    time.sleep(0.1)
    d._check(time.monotonic())
    _, action, ok, failure = d._done.popleft()
    assert action == "execute" and not ok and failure.check(AtomTimeout)
    assert "'n0'" in failure.exception_str and "0.05" in failure.exception_str
    # its late answer is discarded
    d._on_message({"type": "result", "uuid": req.uuid, "worker": "w1", "ok": True, "result": 1})
    assert not d._done


def refusal(uuid: str, worker: str) -> dict[str, Any]:
    failure = Failure.from_exception(WorkerError(f"request {uuid} was redelivered"))
    return {"type": "result", "uuid": uuid, "worker": worker, "ok": False, "failure": failure.to_dict()}


def refused_by_w2() -> tuple[WorkerDispatcher, Wire, str]:
    """Two workers; the one request sent, and w2 refusing a redelivered copy of it. Whether the refusal
    stands hangs on w1, which may have the original: each test says what w1 turns out to do."""
    d, wire = dispatcher()
    d._on_notify(notify("w1"))
    d._on_notify(notify("w2"))
    submit(d, 1)
    req_id = wire.sent[0]
    d._on_message({**refusal(req_id, "w2"), "redelivered": True})
    return d, wire, req_id


def test_refused_copy_is_sent_again_when_no_worker_has_it() -> None:
    d, wire, req_id = refused_by_w2()
    assert not d._done and wire.sent == [req_id]  # held: w1 might have it
    d._on_notify(notify("w1"))  # w1 does not run it, and sent no answer
    assert wire.sent == [req_id, req_id] and not d._done


def test_refused_copy_of_a_request_another_worker_runs_is_ignored() -> None:
    d, wire, req_id = refused_by_w2()
    d._on_notify(notify("w1", running=(req_id,)))
    assert d._requests[req_id].stage == RUNNING and not d._done and len(wire.sent) == 1


def test_refusal_stands_when_a_worker_that_may_have_run_it_died() -> None:
    d, wire, _ = refused_by_w2()
    d._registry.workers["w1"].last_seen -= 60
    d._check(time.monotonic())
    _, _, ok, failure = d._done.popleft()
    assert not ok and "redelivered" in failure.exception_str and len(wire.sent) == 1


def test_registry_saturated_reads_the_heartbeats() -> None:
    reg = Registry([TOPIC], 10.0)
    reg.notified(notify("w1", threads=2, running=("a",)))
    now = time.monotonic()
    assert not reg.saturated(TOPIC, TASK, now)
    reg.notified(notify("w1", threads=2, running=("a", "b")))
    assert reg.saturated(TOPIC, TASK, now)
    assert not reg.saturated(TOPIC, "other.Task", now)


def test_recent_answers_keep_a_window_from_when_they_were_last_sent() -> None:
    answers = RecentAnswers(window=10.0)
    answers.add("a", "q", b"A", now=100.0)
    answers.add("b", "q", b"B", now=105.0)
    answers.add("c", "q", b"C", now=111.0)  # "a" is older than the window now
    assert answers.get("a") is None and answers.get("b") == ("q", b"B")
    answers.resent(now=500.0)  # sent again after a long outage: kept a full window from then
    answers.add("d", "q", b"D", now=505.0)
    assert [r for r, _, _ in answers] == ["b", "c", "d"]


def test_timeouts_are_checked() -> None:
    assert check_timeout(None, "x") is None and check_timeout(2, "x") == 2.0
    for bad in (0, -1, float("inf"), float("nan"), True, "5"):
        with pytest.raises(InvalidFlowError, match="timeout must be a positive number"):
            check_timeout(bad, "atom 'a'")
    with pytest.raises(InvalidFlowError, match=r"atom 'n'.*timeout"):
        wt.Noop(name="n", timeout=0)
    with pytest.raises(InvalidFlowError, match="default_timeout"):
        engines.load(
            LinearFlow("f").add(wt.Noop()),
            engine="worker-based",
            transport="memory://",
            topics=[TOPIC],
            default_timeout=-1,
        )


ASYNC_TASK = "tests.support.tasks.AsyncStep"


def test_async_calls_take_the_workers_async_slots_not_its_threads() -> None:
    from tests.support.tasks import AsyncStep

    d, wire = dispatcher()
    d._on_notify({**notify("w1", threads=1, async_slots=3), "tasks": [TASK, ASYNC_TASK]})
    for i in range(10):
        d.submit(i, AsyncStep(name=f"a{i}"), "execute", {})
    submit(d, 10)
    sent = [d._requests[u] for u in wire.sent]
    assert sum(r.is_async for r in sent) == 3 * PIPELINE  # the async slots, each with one queued
    assert sum(not r.is_async for r in sent) == 1 * PIPELINE  # the one thread, with one queued
    first_async = next(r for r in sent if r.is_async)
    d._on_message({"type": "result", "uuid": first_async.uuid, "worker": "w1", "ok": True, "result": None})
    flush_waiting(d)
    assert [d._requests[u].is_async for u in wire.sent[len(sent) :]] == [True]  # an async seat came free


def test_a_worker_without_async_slots_gets_no_async_calls() -> None:
    from tests.support.tasks import AsyncStep

    d, wire = dispatcher(timeout=0.2)
    d._on_notify({**notify("w1", threads=4), "tasks": [TASK, ASYNC_TASK]})  # an older worker: no slots
    d.submit(0, AsyncStep(name="a"), "execute", {})
    d._check(time.monotonic())
    assert wire.sent == []
    time.sleep(0.3)
    d._check(time.monotonic())
    assert len(d._done) == 1 and d._done[0][3].check(NoWorkerAvailable)


def test_requests_whose_corked_write_failed_wait_again_and_go_first() -> None:
    d, wire = dispatcher()
    d._on_notify(notify("w1", threads=1))
    for i in range(3):  # two sent (corked), one waits
        d.submit(i, wt.Noop(name=f"n{i}"), "execute", {})
    first_two = [r.uuid for r in d._corked]
    assert len(first_two) == PIPELINE and wire.sent == []
    wire.flush_ok = False
    d._uncork()  # the connection died under the write: those two never left
    assert d._requests == {}
    assert [r.uuid for q in d._waiting.values() for r in q][:2] == first_two
    wire.flush_ok = True
    flush_waiting(d)
    assert wire.sent[PIPELINE:] == first_two  # sent again, before the one that waited behind them
    assert all(d._requests[u].stage == SENT for u in first_two)


def test_ready_requests_go_several_to_a_message_only_where_every_worker_takes_batches() -> None:
    d, wire = dispatcher()
    d._on_notify(notify("w1", threads=2, batch=64))
    d._on_notify(notify("w2", threads=3, batch=64))
    submit(d, 12)
    # 2 x 5 threads: 10 seats; no more to a message than the smallest worker's threads
    assert [len(b) for b in wire.batches] == [2, 2, 2, 2, 2] and len(wire.sent) == 10
    answers = [{"uuid": u, "ok": True, "result": i} for i, u in enumerate(wire.sent[:3])]
    body = protocol.batch(protocol.RESULTS, [protocol.encode_item(**a) for a in answers], worker="w1")
    d._on_raw(SimpleNamespace(body=body, content_type=protocol.CONTENT_TYPE))
    d._drain_inbox()
    assert sorted(d._done.popleft()[3] for _ in range(3)) == [0, 1, 2]
    d._on_notify(notify("w3", threads=2))  # an older worker: it takes single requests only
    batches = len(wire.batches)
    flush_waiting(d)
    assert len(wire.batches) == batches and len(wire.sent) == 12  # the two left went one to a message
