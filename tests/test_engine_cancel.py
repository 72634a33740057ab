"""``engine.cancel(reason)`` on the serial, thread, process and worker-based engines: during the forward
pass, during a revert, before ``run()``, after the end, in a retry delay, and resumed after a crash half way
through the cancel's revert.

The steps (``tests.support.cancel_flows``) hold until a file appears, so a cancel from another thread lands
while a step runs, on every dispatcher; what they did goes to a journal file.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit import LinearFlow, engines
from flowkit.engines.cancel import CANCEL_KEY
from flowkit.exceptions import Cancelled
from flowkit.failure import Failure
from flowkit.persistence import backends, models
from flowkit.states import AtomState, FlowState
from tests.support.cancel_flows import held, three_steps
from tests.support.dispatchers import KINDS, options_for, served_exchange
from tests.support.journal import Journal
from tests.support.runs import on_atom
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parent.parent
WORKER_TOPIC = "cancel"


@pytest.fixture(scope="module")
def worker_exchange() -> Iterator[str]:
    """A worker serving ``tests.support.cancel_flows`` over ``memory://``, on a thread."""
    tasks = ["tests.support.cancel_flows", "tests.support.tasks"]
    with served_exchange("fk-cancel", WORKER_TOPIC, tasks, threads=4) as exchange:
        yield exchange


@pytest.fixture(params=KINDS)
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return options_for(request.param, request, topic=WORKER_TOPIC, max_workers=4, transition_timeout=30.0)


def _cancelled_run(engine: engines.Engine, operator: Callable[[], None]) -> Cancelled:
    """Run ``engine`` while ``operator`` acts on it from another thread (waits for a step, cancels,
    releases the step), and return the Cancelled the run must raise once the operator is done."""
    thread = threading.Thread(target=operator)
    thread.start()
    with pytest.raises(Cancelled) as caught:
        engine.run()
    thread.join()
    return caught.value


def test_cancel_from_another_thread_while_a_step_runs(
    options: dict[str, Any], journal: Journal, tmp_path: Path
) -> None:
    release = tmp_path / "release-b"
    engine = engines.load(three_steps(hold_b=str(release)), store={"journal": str(journal)}, **options)
    answers: list[bool] = []

    def operator() -> None:
        wait_until(lambda: "b" in journal.names("execute"), 20, "b to run")
        answers.append(engine.cancel("operator asked"))
        answers.append(engine.cancel("asked twice"))  # the first reason wins
        release.write_text("")

    cancelled = _cancelled_run(engine, operator)
    assert answers == [True, False]
    assert cancelled.reason == "operator asked" and "three" in str(cancelled)
    assert journal.names("execute") == ["a", "b"]  # b ran to its end; c never started
    assert journal.names("reverted") == ["b", "a"]
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert st.get_atom_states() == {"a": AtomState.REVERTED, "b": AtomState.REVERTED, "c": AtomState.PENDING}
    assert list(st.flow_failures) == [CANCEL_KEY]
    # every revert is told why: the cancel is in its flow_failures
    assert journal.data("revert", "a")["flow_failures"] == [CANCEL_KEY]


def test_cancel_from_a_listener(options: dict[str, Any], journal: Journal) -> None:
    engine = engines.load(three_steps(), store={"journal": str(journal)}, **options)
    on_atom(engine, "b", AtomState.RUNNING, lambda: engine.cancel("from a listener"))
    with pytest.raises(Cancelled, match="from a listener"):
        engine.run()
    assert journal.names("execute") == ["a", "b"]
    assert journal.names("reverted") == ["b", "a"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_cancel_during_a_revert_lets_the_revert_finish(options: dict[str, Any], journal: Journal) -> None:
    """c fails, so the flow reverts; a cancel while b is reverting does not stop the revert half way."""
    engine = engines.load(three_steps(fail_c=True), store={"journal": str(journal)}, **options)
    on_atom(engine, "b", AtomState.REVERTING, lambda: engine.cancel("while reverting"))
    with pytest.raises(Cancelled, match="while reverting") as caught:
        engine.run()
    assert isinstance(caught.value.__cause__, RuntimeError)  # c's own failure is kept as the cause
    assert journal.names("reverted") == ["c", "b", "a"]
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert set(st.get_atom_states().values()) == {AtomState.REVERTED}
    assert set(st.flow_failures) == {"c", CANCEL_KEY}
    assert journal.data("revert", "a")["flow_failures"] == sorted(["c", CANCEL_KEY])


def test_a_failure_while_cancelling_is_reverted_with_the_cancel(
    options: dict[str, Any], journal: Journal, tmp_path: Path
) -> None:
    """b fails after the cancel came: no retry is asked, everything is reverted, run() says Cancelled."""
    release = tmp_path / "release"
    flow = LinearFlow("three").add(held("a"), held("b", release=str(release), fail=True), held("c"))
    engine = engines.load(flow, store={"journal": str(journal)}, **options)

    def operator() -> None:
        wait_until(lambda: "b" in journal.names("execute"), 20, "b to run")
        engine.cancel("stop")
        release.write_text("")

    cancelled = _cancelled_run(engine, operator)
    assert isinstance(cancelled.__cause__, RuntimeError)
    assert journal.names("execute") == ["a", "b"]
    assert journal.names("reverted") == ["b", "a"]
    assert set(engine.storage.flow_failures) == {"b", CANCEL_KEY}


def test_cancel_before_run_starts_nothing(options: dict[str, Any], journal: Journal) -> None:
    engine = engines.load(three_steps(), store={"journal": str(journal)}, **options)
    assert engine.cancel("not wanted any more") is True
    with pytest.raises(Cancelled, match="not wanted any more"):
        engine.run()
    assert journal.events == []
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_cancel_after_the_end_does_nothing(journal: Journal) -> None:
    engine = engines.load(three_steps(), store={"journal": str(journal)})
    engine.run()
    assert engine.cancel("too late") is False
    engine.run()  # a finished flow runs again without a cancel left over from before
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert journal.names("revert") == []


def test_cancel_of_a_suspended_flow_reverts_what_ran(journal: Journal) -> None:
    engine = engines.load(three_steps(), store={"journal": str(journal)})
    on_atom(engine, "b", AtomState.SUCCESS, engine.suspend)
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert engine.cancel("suspended, then cancelled") is True
    with pytest.raises(Cancelled):
        engine.run()
    assert journal.names("execute") == ["a", "b"]
    assert journal.names("reverted") == ["b", "a"]


def test_a_failed_revert_after_a_cancel_ends_failure(journal: Journal) -> None:
    """An undo that failed needs an operator: FAILURE, the revert's own error raised, the cancel as its
    context (what the flow was reverting because of)."""
    from tests.support.tasks import Step

    flow = three_steps()
    flow.add(Step(name="d", inject={"revert_fail": "cannot undo"}))
    engine = engines.load(flow, store={"journal": str(journal)})
    on_atom(engine, "d", AtomState.SUCCESS, lambda: engine.cancel("stop"))
    with pytest.raises(KeyError, match="cannot undo") as caught:
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    assert isinstance(caught.value.__context__, Cancelled)


def test_suspend_during_the_cancels_revert_then_resume_finishes_it(journal: Journal) -> None:
    backend = backends.fetch("memory://")
    book = models.LogBook("b")
    fd = models.FlowDetail("three", uuid=str(uuid.uuid4()))
    book.add(fd)
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    store = {"journal": str(journal)}
    engine = engines.load(three_steps(), store=store, backend=backend, book=book, flow_detail=fd)
    on_atom(engine, "b", AtomState.RUNNING, lambda: engine.cancel("stop"))
    on_atom(engine, "b", AtomState.REVERTED, engine.suspend)
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert journal.names("reverted") == ["b"]
    again = engines.load(three_steps(), store=store, backend=backend, book=book, flow_detail=fd)
    with pytest.raises(Cancelled, match="stop"):
        again.run()
    assert journal.names("reverted") == ["b", "a"]
    assert journal.names("execute") == ["a", "b"]


@pytest.mark.slow
def test_a_crash_during_the_cancels_revert_resumes_reverting(tmp_path: Path, journal: Journal) -> None:
    """The cancel is saved before any revert: killed mid-revert, the flow resumes reverting, not forward."""
    db = f"sqlite:///{tmp_path}/flows.db"
    backend = backends.fetch(db)
    with backend.get_connection() as conn:
        conn.upgrade()
    book = models.LogBook("crash")
    fd = models.FlowDetail("three", uuid=str(uuid.uuid4()))
    book.add(fd)
    hang = tmp_path / "never-released"
    with backend.get_connection() as conn:
        conn.save_logbook(book)
    engines.save_factory_details(
        fd, "tests.support.cancel_flows:three_steps", kwargs={"hold_b_revert": str(hang)}, backend=backend
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.cancel_flows", db, fd.uuid, str(tmp_path)], cwd=REPO
    )
    try:
        wait_until(lambda: (tmp_path / "reverting-b").exists() or child.poll() is not None, 60, "b reverting")
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(10)
    with backend.get_connection() as conn:
        saved = conn.get_flow_detail(fd.uuid)
    assert saved.state is FlowState.REVERTING
    assert CANCEL_KEY in saved.failures
    hang.write_text("")  # the resumed revert of b may finish now
    engine = engines.load_from_detail(fd.uuid, backend=backend, store={"journal": str(journal)})
    with pytest.raises(Cancelled, match="operator asked"):
        engine.run()
    assert journal.names("execute") == ["a", "b"]  # c never ran, before or after the crash
    assert journal.names("reverted") == ["b", "a"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_cancelled_survives_pickling_and_failure_json() -> None:
    exc = Cancelled("create-cluster", "operator asked")
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.flow, copy.reason) == ("create-cluster", "operator asked")
    rebuilt = Failure.from_dict(Failure.from_exception(exc).to_dict())
    assert rebuilt.check(Cancelled) and isinstance(rebuilt.exception, Cancelled)


def test_cancel_cuts_short_a_retry_delay(journal: Journal) -> None:
    """A flow waiting out a retry controller's delay holds no atom: the cancel reverts it at once."""
    from flowkit import retry

    flow = LinearFlow("r", retry=retry.Times(attempts=3, delay=120.0)).add(held("a"), held("b", fail=True))
    engine = engines.load(flow, store={"journal": str(journal)})
    on_atom(engine, "b", AtomState.REVERTED, lambda: threading.Timer(0.1, engine.cancel, ["stop"]).start())
    started = time.monotonic()
    with pytest.raises(Cancelled):
        engine.run()
    assert time.monotonic() - started < 60  # not after the 120 s delay
    assert journal.names("execute") == ["a", "b"]  # no second attempt
    assert journal.names("reverted") == ["b", "a"]  # undone once, for the retry; nothing ran since
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_the_cancel_token_tells_what_holds_something_open(journal: Journal) -> None:
    """The hook for async atoms and waits: a callback is told once, at once if the cancel came already."""
    engine = engines.load(three_steps(), store={"journal": str(journal)})
    token = engine.cancel_token
    told: list[str] = []
    token.add_callback(told.append)
    remove = token.add_callback(lambda reason: told.append(f"removed {reason}"))
    remove()
    assert not token.is_set() and token.reason is None
    on_atom(engine, "a", AtomState.SUCCESS, lambda: engine.cancel("stop"))
    with pytest.raises(Cancelled):
        engine.run()
    assert told == ["stop"]
    late: list[str] = []
    engine2 = engines.load(three_steps(), store={"journal": str(journal)})
    engine2.cancel("early")
    engine2.cancel_token.add_callback(late.append)
    assert late == ["early"] and engine2.cancel_token.wait(0)


def test_the_stop_flag_is_up_before_the_cancels_callbacks_run(journal: Journal) -> None:
    """A callback ends running atoms (async executes); their completions may let the run drain and take
    the cancel in at once, clearing the stop flag for the cancel's revert. The flag must therefore be up
    before any callback runs: set after, it would stop that revert as a suspend does (the flow ended
    SUSPENDED with half of it reverted, and ``run()`` raised nothing)."""
    engine = engines.load(three_steps(), store={"journal": str(journal)})
    token = engine.cancel_token
    token.begin()  # as a run in progress
    seen: list[bool] = []
    token.add_callback(lambda reason: seen.append(engine._suspend.is_set()))
    assert engine.cancel("stop")
    assert seen == [True]
    token.take_in(engine._suspend)  # the run's revert begins: the flag is down, a later suspend stops it
    assert token.handled and not engine._suspend.is_set()
    token.end(finished=False)
