"""``engine.cancel`` meeting the other things a run holds open: durable waits, async atoms on the engine's
loop, timed calls on the process engine, and a wait held in-process under a conductor.

Each test runs the flow on a thread of its own and joins it with a bound, so a cancel that does not
reach what holds the run fails the test instead of hanging it. The bounds are far above what a cancel
takes and far below what the flows would take uncancelled (an hour): they are not timings.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

from conductor import Conductor
from flowkit import Atom, LinearFlow, Sleep, Task, UnorderedFlow, WaitForEvent, engines
from flowkit.engines.persistence import backend_for
from flowkit.exceptions import AtomTimeout, Cancelled
from flowkit.jobboard import JobBoard, JobState
from flowkit.jobboard import backends as boards
from flowkit.states import AtomState, FlowState
from tests.support.cancel_flows import Held, held
from tests.support.conductors import running
from tests.support.dispatchers import KINDS, options_for, served_exchange, worker_options
from tests.support.journal import Journal, record
from tests.support.runs import on_atom, run_bounded
from tests.support.wait import wait_until
from tests.wait_flows import read_log

S = AtomState
WORKER_TOPIC = "cancel-together"
HANG_S = 30.0
"""How long a cancelled run may take before the test calls it hung (the flows would take an hour)."""


@pytest.fixture(scope="module")
def worker_exchange() -> Iterator[str]:
    with served_exchange("fk-together", WORKER_TOPIC, ["tests.support.cancel_flows"], threads=2) as exchange:
        yield exchange


@pytest.fixture(params=KINDS)
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return options_for(request.param, request, topic=WORKER_TOPIC, max_workers=2, transition_timeout=10.0)


def _cancel_soon(engine: engines.Engine, reason: str = "operator asked", after: float = 0.2) -> None:
    timer = threading.Timer(after, engine.cancel, [reason])
    timer.daemon = True
    timer.start()


def _cancel_once_started(engine: engines.Engine, journal: Journal, name: str) -> None:
    """Cancel from another thread as soon as ``name`` recorded its execute (bounded by HANG_S)."""

    def when_started() -> None:
        deadline = time.monotonic() + HANG_S
        while name not in journal.names("execute") and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.cancel("operator asked")

    threading.Thread(target=when_started, daemon=True).start()


# -- durable waits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["sleep", "event"])
def test_cancel_during_a_durable_wait_cancels_the_wait_and_reverts(
    options: dict[str, Any], wait: str, journal: Journal
) -> None:
    """The wait (an hour's Sleep, an event that never comes) holds no atom: the cancel ends it at once.

    Its revert is the engine's own (a wait leaves nothing to undo): never sent to a pool or a worker,
    which may not even know the wait's class.
    """
    waiting = (
        Sleep("nap", seconds=3600) if wait == "sleep" else WaitForEvent("nap", event="approve-{cluster_id}")
    )
    flow = LinearFlow("f").add(held("before"), waiting, held("after"))
    engine = engines.load(flow, store={"journal": str(journal), "cluster_id": 7}, **options)
    on_atom(engine, "nap", S.RUNNING, lambda: _cancel_soon(engine))
    raised = run_bounded(engine, HANG_S)
    assert isinstance(raised, Cancelled) and raised.reason == "operator asked", raised
    assert raised.__cause__ is None  # the wait did not fail: it was cancelled
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert st.get_atom_states() == {"before": S.REVERTED, "nap": S.REVERTED, "after": S.PENDING}
    assert journal.names("execute") == ["before"] and journal.names("reverted") == ["before"]
    assert engine._waits is not None and not engine._waits.pending  # not left waiting


def test_a_wait_is_reverted_by_the_engine_after_a_failure_too(journal: Journal) -> None:
    """A wait that ended (SUCCESS) is reverted when a later step fails; on a worker-based engine too."""
    flow = LinearFlow("f").add(held("before"), Sleep("nap", seconds=0), held("after", fail=True))
    with served_exchange("fk-together", WORKER_TOPIC, ["tests.support.cancel_flows"], threads=2) as exchange:
        engine = engines.load(flow, store={"journal": str(journal)}, **worker_options(exchange, WORKER_TOPIC))
        with pytest.raises(RuntimeError, match="after failed"):
            engine.run()
    assert engine.storage.get_atom_states() == {"before": S.REVERTED, "nap": S.REVERTED, "after": S.REVERTED}


# -- async atoms --------------------------------------------------------------------------------------


class Endless(Task):
    """An async step that awaits for an hour: only a cancel on the loop ends it."""

    async def execute(self, journal: str) -> None:
        record(journal, "execute", self.name)
        await asyncio.sleep(3600)

    async def revert(self, journal: str, **kwargs: Any) -> None:
        record(journal, "reverted", self.name)


@pytest.mark.parametrize("kind", ["serial", "threads"])
def test_cancel_cancels_running_async_atoms_on_the_loop_then_reverts_them(
    kind: str, journal: Journal
) -> None:
    """The running async call is cancelled on the loop and reverted; one waiting for a ``max_async`` slot
    never starts (nor is it reverted: it never ran)."""
    flow = UnorderedFlow("f").add(Endless("a"), Endless("b")) if kind == "threads" else LinearFlow("f")
    if kind == "serial":
        flow.add(held("before"), Endless("a"), Endless("b"))
    options: dict[str, Any] = {"engine": "serial"}
    if kind == "threads":
        options = {"engine": "parallel", "executor": "threads", "max_async": 1}
    engine = engines.load(flow, store={"journal": str(journal)}, **options)
    started = threading.Event()
    on_atom(engine, "a", S.RUNNING, started.set)

    def operator() -> None:
        wait_until(lambda: journal.names("execute")[-1:] == ["a"], HANG_S, "a to run")
        time.sleep(0.1)  # b (threads) is queued for the one slot by now
        engine.cancel("operator asked")

    threading.Thread(target=operator, daemon=True).start()
    raised = run_bounded(engine, HANG_S)
    assert isinstance(raised, Cancelled), raised
    assert "a" in journal.names("execute") and "b" not in journal.names("execute")
    assert "a" in journal.names("reverted") and "b" not in journal.names("reverted")
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert st.get_atom_state("a") is S.REVERTED
    assert st.get_atom_state("b") in (S.PENDING, S.REVERTED)


def test_async_reverts_after_a_cancel_are_not_cancelled(journal: Journal) -> None:
    """Only the executes are cancelled: the reverts the cancel starts on the same loop run to their end."""

    class SlowUndo(Task):
        async def execute(self, journal: str) -> str:
            record(journal, "execute", self.name)
            return self.name

        async def revert(self, journal: str, **kwargs: Any) -> None:
            await asyncio.sleep(0.3)
            record(journal, "reverted", self.name)

    flow = LinearFlow("f").add(SlowUndo("a"), SlowUndo("b"), Endless("c"))
    engine = engines.load(flow, store={"journal": str(journal)}, engine="parallel", executor="threads")
    # cancel once c's execute has really begun on the loop (RUNNING is recorded just before it starts)
    on_atom(engine, "c", S.RUNNING, lambda: _cancel_once_started(engine, journal, "c"))
    raised = run_bounded(engine, HANG_S)
    assert isinstance(raised, Cancelled), raised
    assert journal.names("reverted") == ["c", "b", "a"]
    assert engine.storage.get_atom_states() == {"a": S.REVERTED, "b": S.REVERTED, "c": S.REVERTED}


# -- timed calls on the process engine ----------------------------------------------------------------


def _on_the_pool(pool: futures.ProcessPoolExecutor, journal: Journal, *atoms: Atom) -> engines.Engine:
    """A parallel engine running ``atoms`` in order on the process ``pool``, recording in ``journal``:
    where a timed call is a process of its own, which a timeout can stop."""
    return engines.load(
        LinearFlow("f").add(*atoms), store={"journal": str(journal)}, engine="parallel", executor=pool
    )


def test_a_timed_call_on_the_process_engine_is_let_finish_by_a_cancel(
    process_pool: futures.ProcessPoolExecutor, journal: Journal, tmp_path: Path
) -> None:
    """A cancel waits for a running task, timed or not: the process-bound call ends on its own."""
    release = tmp_path / "release"
    step = Held(name="b", inject={"release": str(release)}, timeout=20.0)
    engine = _on_the_pool(process_pool, journal, held("a"), step, held("c"))

    def operator() -> None:
        wait_until(lambda: "b" in journal.names("execute"), HANG_S, "b to run")
        engine.cancel("operator asked")
        time.sleep(0.2)
        release.write_text("")

    threading.Thread(target=operator, daemon=True).start()
    raised = run_bounded(engine, HANG_S)
    assert isinstance(raised, Cancelled) and raised.__cause__ is None, raised
    assert journal.names("execute") == ["a", "b"]
    assert journal.names("reverted") == ["b", "a"]


def test_a_timed_call_that_runs_past_its_timeout_after_a_cancel_is_stopped_there(
    process_pool: futures.ProcessPoolExecutor, journal: Journal, tmp_path: Path
) -> None:
    """The cancel waits no longer than the call's timeout: its process is stopped then, the atom fails
    with AtomTimeout (the Cancelled's cause) and is reverted with the rest."""
    step = Held(name="b", inject={"release": str(tmp_path / "never")}, timeout=1.5)  # would hold 30 s
    engine = _on_the_pool(process_pool, journal, held("a"), step)

    def operator() -> None:
        wait_until(lambda: "b" in journal.names("execute"), HANG_S, "b to run")
        engine.cancel("operator asked")

    threading.Thread(target=operator, daemon=True).start()
    raised = run_bounded(engine, HANG_S)
    assert isinstance(raised, Cancelled) and isinstance(raised.__cause__, AtomTimeout), raised
    assert journal.names("reverted") == ["b", "a"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED


# -- under a conductor ------------------------------------------------------------------------------------


@pytest.fixture
def other(board: JobBoard, board_url: str, persistence_url: str) -> Iterator[JobBoard]:
    made = boards.fetch(board.name, board_url, persistence=persistence_url)
    made.connect()
    yield made
    made.close()


def test_a_job_waiting_in_process_is_cancelled_through_the_board_at_once(
    board: JobBoard, other: JobBoard, persistence_url: str, tmp_path: Path
) -> None:
    """A Sleep beside a retry delay is not parked (a delay holds the run): the conductor waits in-process,
    and ``board.cancel`` from another client ends the wait, reverts the flow and ends the job CANCELLED."""
    job = board.post_flow(
        "tests.wait_flows:nap_beside_a_retry_delay", factory_args=[str(tmp_path), 3600.0, 3600.0], name="busy"
    )
    with running(Conductor("c1", board, persistence_url, wait_timeout=0.2)) as conductor:
        wait_until(
            lambda: "revert flaky" in read_log(tmp_path), 20, "the first attempt to fail and be undone"
        )
        time.sleep(0.3)  # the run is in its wait by now
        assert board.state_of(job) is JobState.CLAIMED  # held, not parked
        asked = time.monotonic()
        other.cancel(job, "operator asked")
        wait_until(lambda: other.state_of(job) is JobState.CANCELLED, 10, "the job to end CANCELLED")
        took = time.monotonic() - asked
    with backend_for(persistence_url).get_connection() as conn:
        assert conn.get_flow_detail(job.flow_uuid or "").state is FlowState.REVERTED
    assert read_log(tmp_path)[-1] == "revert before"
    assert conductor.stats.cancelled == 1 and conductor.stats.parked == 0
    print(f"\n{type(board).__name__}: board.cancel to job CANCELLED, flow waiting in-process: {took:.2f}s")
    assert took < 2.0, took
