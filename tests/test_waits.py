"""Durable waits in process: Sleep and WaitForEvent on the serial and parallel engines, with and without
persistence (every backend), events sent before and after the wait, timeouts, a crash mid-sleep.

The child process of the crash test runs ``tests/wait_flows.py``.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowkit import LinearFlow, Sleep, Task, UnorderedFlow, WaitForEvent, engines, retry
from flowkit.exceptions import InvalidFlowError, StorageError, WaitTimeout
from flowkit.persistence import events
from flowkit.persistence.backends import Backend
from flowkit.persistence.models import FlowDetail, LogBook
from flowkit.states import AtomState, FlowState
from tests.support.persistence import saved_flow
from tests.wait_flows import Note, approval, read_log, sleepy

REPO = Path(__file__).resolve().parent.parent
ENGINES = ["serial", "parallel"]


def _later(seconds: float, fn: Any, *args: Any) -> threading.Timer:
    timer = threading.Timer(seconds, fn, args)
    timer.daemon = True
    timer.start()
    return timer


def _persisted(flow: Any, backend: Backend, **options: Any) -> tuple[engines.Engine, FlowDetail]:
    book = LogBook("waits")
    fd = book.add(FlowDetail(flow.name, uuid=str(uuid.uuid4())))
    return engines.load(flow, backend=backend, book=book, flow_detail=fd, **options), fd


# -- atoms ------------------------------------------------------------------------------------------


def test_bad_waits_are_refused_when_declared() -> None:
    with pytest.raises(InvalidFlowError, match="seconds=, until=, or rebind"):
        Sleep("nap")
    with pytest.raises(InvalidFlowError, match="not both"):
        Sleep("nap", seconds=1, until=datetime.now(UTC))
    with pytest.raises(InvalidFlowError, match="seconds must be a number"):
        Sleep("nap", seconds=-1)
    with pytest.raises(InvalidFlowError, match="timezone-aware"):
        Sleep("nap", until=datetime.now())  # a naive datetime: refused
    with pytest.raises(InvalidFlowError, match="non-empty str"):
        WaitForEvent("w", event="")
    with pytest.raises(InvalidFlowError, match="store symbols"):
        WaitForEvent("w", event="approve-{a.b}")


def test_an_event_wait_requires_the_symbols_of_its_event_name() -> None:
    assert WaitForEvent("w", event="approve-{cluster_id}-{zone}").requires == {"cluster_id", "zone"}


def test_wait_timeout_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(WaitTimeout("approve", "approve-42", 5.0)))
    assert (err.atom, err.event, err.timeout) == ("approve", "approve-42", 5.0)
    assert "approve-42" in str(err)


# -- in memory ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ENGINES)
def test_sleep_ends_the_wait_and_the_flow_goes_on(kind: str, tmp_path: Path) -> None:
    engine = engines.load(sleepy(str(tmp_path), 0.3), engine=kind)
    started = time.monotonic()
    engine.run()
    assert time.monotonic() - started >= 0.3
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert [line.split()[0] for line in read_log(tmp_path)] == ["before", "after"]


def test_sleep_until_a_time_and_from_the_store(tmp_path: Path) -> None:
    until = datetime.now(UTC) + timedelta(seconds=0.3)
    flow = LinearFlow("f").add(Sleep("a", until=until), Sleep("b", rebind={"seconds": "pause"}))
    engine = engines.load(flow, store={"pause": 0.2})
    engine.run()
    assert datetime.now(UTC) >= until + timedelta(seconds=0.2)


@pytest.mark.parametrize("kind", ENGINES)
def test_an_event_sent_during_the_wait_wakes_it_with_its_payload(kind: str, tmp_path: Path) -> None:
    engine = engines.load(approval(str(tmp_path)), store={"cluster_id": 42}, engine=kind)
    _later(0.3, engine.send_event, "approve-42", {"by": "ops"})
    engine.run()
    assert engine.storage.fetch("approval") == {"by": "ops"}
    assert read_log(tmp_path)[-1] == "after [('approval', {'by': 'ops'})]"


def test_an_event_sent_before_the_flow_reaches_its_wait_is_kept_for_it(tmp_path: Path) -> None:
    engine = engines.load(approval(str(tmp_path)), store={"cluster_id": 7})
    engine.send_event("approve-7", "yes")
    engine.send_event("approve-8", "not this one")
    engine.run()
    assert engine.storage.fetch("approval") == "yes"


def test_the_parallel_engine_wakes_a_wait_while_another_atom_still_runs(tmp_path: Path) -> None:
    release = threading.Event()

    class Slow(Task):
        def execute(self) -> None:
            release.wait(30)

    seen: list[float] = []

    class After(Task):
        def execute(self, approval: Any) -> None:
            seen.append(time.monotonic())
            release.set()

    flow = UnorderedFlow("f").add(
        Slow("slow"),
        LinearFlow("w").add(WaitForEvent("w", event="go", provides="approval"), After("after")),
    )
    engine = engines.load(flow, engine="parallel", max_workers=2)
    _later(0.2, engine.send_event, "go", 1)
    engine.run()  # would hang for 30s if the event waited for "slow" to finish first
    assert seen and release.is_set()


@pytest.mark.parametrize("kind", ENGINES)
def test_a_wait_that_times_out_fails_and_the_flow_reverts(kind: str, tmp_path: Path) -> None:
    engine = engines.load(approval(str(tmp_path), timeout=0.2), store={"cluster_id": 1}, engine=kind)
    with pytest.raises(WaitTimeout, match="approve-1"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert read_log(tmp_path) == ["before []", "revert before"]


def test_a_retry_controller_takes_a_wait_timeout_like_any_failure(tmp_path: Path) -> None:
    flow = LinearFlow("f", retry=retry.Times(attempts=2)).add(
        WaitForEvent("w", event="go", timeout=0.2, provides="got"),
        Note("after", str(tmp_path), requires=["got"]),
    )
    engine = engines.load(flow)
    _later(0.3, engine.send_event, "go", "second attempt")  # after the first attempt timed out
    engine.run()
    assert engine.storage.fetch("got") == "second attempt"


def test_a_suspended_wait_resumes_with_its_remaining_time(tmp_path: Path) -> None:
    engine = engines.load(sleepy(str(tmp_path), 1.0))
    _later(0.3, engine.suspend)
    started = time.monotonic()
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.9, elapsed  # a restarted sleep would have taken 1.3s or more after the suspend


def test_parking_stops_the_run_and_says_until_when_and_for_what(tmp_path: Path) -> None:
    flow = UnorderedFlow("f").add(Sleep("nap", seconds=60), WaitForEvent("w", event="go"))
    engine = engines.load(flow)
    engine.park_waits = True
    before = time.time()
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    parked = engine.parked
    assert parked is not None and parked.events == ("go",)
    assert parked.wake_at is not None and before + 60 <= parked.wake_at < time.time() + 60


# -- with persistence ---------------------------------------------------------------------------------


def test_events_are_kept_and_the_latest_of_a_name_is_taken(backend: Backend) -> None:
    events.send_event(backend, "approve-1", {"n": 1})
    events.send_event(backend, "approve-1", {"n": 2})
    events.send_event(backend, "other", None)
    found = events.latest_events(backend, ["approve-1", "never-sent"])
    assert list(found) == ["approve-1"] and found["approve-1"].payload == {"n": 2}
    assert events.prune_events(backend, older_than=3600) == 0
    assert events.prune_events(backend, older_than=-1) == 3
    assert events.latest_events(backend, ["approve-1"]) == {}


def test_a_bad_event_name_is_refused(backend: Backend) -> None:
    with pytest.raises(StorageError, match="event name"):
        events.send_event(backend, "", 1)


def test_a_saved_event_sent_before_the_flow_starts_is_kept_for_it(backend: Backend, tmp_path: Path) -> None:
    events.send_event(backend, "approve-3", "from before")
    engine, _ = _persisted(approval(str(tmp_path)), backend, store={"cluster_id": 3})
    engine.run()
    assert engine.storage.fetch("approval") == "from before"


def test_one_event_wakes_every_flow_waiting_on_its_name(backend: Backend, tmp_path: Path) -> None:
    loaded = [_persisted(approval(str(tmp_path)), backend, store={"cluster_id": 5})[0] for _ in range(3)]
    for engine in loaded:
        assert engine._engine_waits() is not None
        engine._engine_waits().poll = 0.1  # type: ignore[union-attr]
    threads = [threading.Thread(target=e.run) for e in loaded]
    for t in threads:
        t.start()
    time.sleep(0.3)
    events.send_event(backend, "approve-5", "all of you")  # as another process would: through persistence
    for t in threads:
        t.join(30)
    assert [e.storage.fetch("approval") for e in loaded] == ["all of you"] * 3


def test_a_parked_flow_resumes_in_a_new_engine_with_its_remaining_time(
    backend: Backend, tmp_path: Path
) -> None:
    engine, fd = _persisted(sleepy(str(tmp_path), 1.0), backend)
    engine.park_waits = True
    engine.run()
    parked = engine.parked
    assert parked is not None and parked.wake_at is not None
    saved = saved_flow(backend, fd.uuid)
    assert saved.state is FlowState.SUSPENDED
    nap = saved.find_by_name("nap")
    assert nap is not None and nap.state is AtomState.RUNNING
    assert nap.meta["wait"]["deadline"] == pytest.approx(parked.wake_at)
    again = engines.load(sleepy(str(tmp_path), 1.0), backend=backend, flow_detail=saved)
    again.run()
    assert again.storage.get_flow_state() is FlowState.SUCCESS
    assert parked.wake_at <= time.time() < parked.wake_at + 0.9
    assert [line.split()[0] for line in read_log(tmp_path)] == ["before", "after"]


def test_a_wait_that_restarts_gets_a_new_deadline(backend: Backend, tmp_path: Path) -> None:
    """The saved deadline belongs to one attempt: a retry starts the wait afresh."""
    flow = LinearFlow("f", retry=retry.Times(attempts=2)).add(
        Sleep("nap", seconds=0.3), WaitForEvent("w", event="never", timeout=0.1)
    )
    engine, _ = _persisted(flow, backend)
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        engine.run()
    assert time.monotonic() - started >= 0.8  # two naps, two timeouts


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_process_killed_during_a_sleep_resumes_with_the_remaining_time(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.support.persistence import backend_url, fresh_backend

    backend = fresh_backend(backend_url(kind, request, tmp_path))
    flow_uuid = str(uuid.uuid4())
    seconds = 3.0
    cmd = [sys.executable, "-m", "tests.wait_flows", backend.url, str(tmp_path), flow_uuid, str(seconds)]
    child = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE)
    try:
        deadline, saved_deadline = time.monotonic() + 60, None
        while saved_deadline is None:
            assert child.poll() is None, child.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the child never began its sleep"
            if (tmp_path / "began").exists():
                nap = saved_flow(backend, flow_uuid).find_by_name("nap")
                if nap is not None and "wait" in nap.meta:
                    saved_deadline = nap.meta["wait"]["deadline"]
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        killed_at = time.time()
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert read_log(tmp_path) == ["before []"]
    engine = engines.load_from_detail(flow_uuid, backend=backend)
    engine.run()
    ended = time.time()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert saved_deadline <= ended < saved_deadline + 1.0  # not killed_at + 3s: the sleep did not restart
    assert ended < killed_at + seconds
    assert read_log(tmp_path) == ["before []", "after []"]
    backend.close()


def test_a_wait_restarted_by_a_retry_keeps_its_new_deadline(tmp_path: Path) -> None:
    """A sibling fails while the wait waits: the retry reverts and restarts both; the old deadline
    left in the heap must not end the new wait early."""
    attempts: list[float] = []

    class FailOnce(Task):
        def execute(self) -> None:
            attempts.append(time.monotonic())
            if len(attempts) == 1:
                time.sleep(0.2)
                raise RuntimeError("first attempt fails")

    flow = UnorderedFlow("f", retry=retry.Times(attempts=2)).add(Sleep("nap", seconds=0.5), FailOnce("flaky"))
    engine = engines.load(flow, engine="parallel", max_workers=2)
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    # The second nap lasted its full time. Its deadline is set when it starts, a hair before "flaky"
    # records its attempt on another thread (so exactly 0.5 may be missed by that hair); ending at
    # the first nap's deadline instead would show about 0.3 here.
    assert time.monotonic() - attempts[1] >= 0.45


def test_waits_run_in_the_engine_of_a_worker_based_flow() -> None:
    """The waits never travel to a worker: the engine keeps them; the worker runs the tasks."""
    from tests.support import tasks
    from tests.support.workers import TASK_MODULES, memory_worker

    exchange = f"fk-test-{uuid.uuid4().hex[:12]}"
    flow = LinearFlow("f").add(
        Sleep("nap", seconds=0.2), tasks.Add(), WaitForEvent("w", event="sum-{sum}", provides="approval")
    )
    with memory_worker(exchange, "waits", TASK_MODULES):
        engine = engines.load(
            flow,
            engine="worker-based",
            transport="memory://",
            exchange=exchange,
            topics=["waits"],
            transport_options={"polling_interval": 0.001},
            store={"x": 1, "y": 2},
        )
        _later(0.5, engine.send_event, "sum-3", "three")
        engine.run()
    assert engine.storage.fetch("approval") == "three"


def test_an_until_from_a_saved_store_may_be_iso_text(backend: Backend, tmp_path: Path) -> None:
    until = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    flow = LinearFlow("f").add(Sleep("nap", rebind={"until": "wake"}), Note("after", str(tmp_path)))
    engine, _ = _persisted(flow, backend, store={"wake": until})
    engine.run()
    assert datetime.now(UTC) >= datetime.fromisoformat(until)
    assert read_log(tmp_path) == ["after []"]


def test_an_engine_refuses_a_bad_event_name() -> None:
    engine = engines.load(LinearFlow("f").add(Sleep("nap", seconds=0)))
    with pytest.raises(StorageError, match="event name"):
        engine.send_event("", 1)
