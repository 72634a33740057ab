"""One engine contract, every dispatcher: serial, parallel on threads, parallel on processes, and worker-based
over kombu's in-memory transport (a worker on a thread of this process).

The semantics here (results, life cycle, revert order and exactly-once, retries, deciders, suspend and
resume, notifications, failures re-raised) must not depend on where atoms run. The tasks come from
``tests.support.tasks`` (importable, configured by their arguments) and write what they did to a journal
file, so the same assertions hold when they run in another process. Tests of one dispatcher's own
behaviour stay in ``test_engine_parallel.py``, ``test_workers_*.py`` and the other ``test_engine_*`` files.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowkit import GraphFlow, LinearFlow, UnorderedFlow, engines, notifier, retry
from flowkit.exceptions import AtomTimeout, CoroutineResult, NotFound
from flowkit.states import AtomState, EngineState, FlowState
from tests.support.dispatchers import KINDS, options_for, served_exchange
from tests.support.journal import Journal
from tests.support.tasks import (
    AsyncStep,
    DiskFull,
    Echo,
    Progressing,
    ReturnsCoroutine,
    Sleepy,
    Step,
    Whereabouts,
)
from tests.support.wait import wait_until

DISK_FULL = "tests.support.tasks.DiskFull"
WORKER_TOPIC = "contract"


@dataclass
class Dispatcher:
    """How to load an engine on one dispatcher: the options ``engines.load`` gets besides the flow."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def load(self, flow: Any, **kwargs: Any) -> engines.Engine:
        return engines.load(flow, **self.options, **kwargs)

    def run(self, flow: Any, **kwargs: Any) -> dict[str, Any]:
        engine = self.load(flow, **kwargs)
        engine.run()
        return engine.storage.fetch_all()


@pytest.fixture(scope="module")
def worker_exchange() -> Iterator[str]:
    """A worker serving ``tests.support.tasks`` on ``memory://``, on a thread; yields its exchange."""
    with served_exchange("fk-contract", WORKER_TOPIC, ["tests.support.tasks"], threads=4) as exchange:
        yield exchange


@pytest.fixture(scope="module", params=KINDS)
def dispatcher(request: pytest.FixtureRequest) -> Dispatcher:
    kind = request.param
    return Dispatcher(
        kind, options_for(kind, request, topic=WORKER_TOPIC, max_workers=4, transition_timeout=10.0)
    )


def step(name: str, value: Any = None, **args: Any) -> Step:
    """A Step named ``name`` whose ``value`` defaults to its name; ``args`` are injected (fail, ...)."""
    provides = args.pop("provides", None)
    requires = args.pop("requires", None)
    return Step(
        name=name,
        provides=provides,
        requires=requires,
        inject={"value": value if value is not None else name, **args},
    )


def echo(name: str, value: Any = None, **kwargs: Any) -> Echo:
    return Echo(name=name, inject={"value": value}, **kwargs)


# -- running and results --------------------------------------------------------------------------------


def test_atoms_run_where_the_dispatcher_puts_them(dispatcher: Dispatcher) -> None:
    """The fixture really changes where atoms run (else every case would test the serial engine)."""
    pid, thread = dispatcher.run(LinearFlow("f").add(Whereabouts(name="where")))["where"]
    here = os.getpid(), threading.current_thread().name
    expected = {
        "serial": lambda: (pid, thread) == here,
        "threads": lambda: pid == here[0] and thread != here[1],
        "processes": lambda: pid != here[0],
        # a worker's task thread, or its loop's own thread (the in-memory worker's) for a call alone
        "workers": lambda: pid == here[0] and thread.startswith(("flowkit-worker", "memory-worker")),
    }
    assert expected[dispatcher.name](), (dispatcher.name, pid, thread)


def test_run_returns_every_provided_value_and_the_store(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(
        echo("a", 1, provides="x"),
        echo("b", [2, 3], provides=("y", "z"), requires=["x"]),
        echo("c", "ignored"),  # provides nothing
    )
    out = dispatcher.run(flow, store={"journal": str(journal), "given": "g"})
    assert out == {"journal": str(journal), "given": "g", "x": 1, "y": 2, "z": 3}
    assert journal.names("execute") == ["a", "b", "c"]


def test_provided_value_overrides_store_value_of_same_name(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(echo("a", "atom", provides="x"))
    assert dispatcher.run(flow, store={"journal": str(journal), "x": "store"})["x"] == "atom"


def test_load_then_life_cycle_steps(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(step("a", provides="x"), step("b", requires=["x", "s"]))
    engine = dispatcher.load(flow, store={"journal": str(journal), "s": 1})
    assert isinstance(engine, engines.Engine)
    compiled = engine.compile()
    assert compiled is engine.compile()  # idempotent
    engine.prepare()
    engine.prepare()
    assert engine.storage.get_flow_state() is FlowState.PENDING
    assert engine.storage.get_atom_state("a") is AtomState.PENDING
    engine.validate()
    assert journal.events == []
    engine.run()
    assert journal.names("execute") == ["a", "b"]
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_run_iter_yields_states_and_ends_with_success(dispatcher: Dispatcher, journal: Journal) -> None:
    engine = dispatcher.load(
        LinearFlow("f").add(step("a"), step("b"), step("c")), store={"journal": str(journal)}
    )
    states = list(engine.run_iter())
    # TaskFlow's engine steps, one round or more per atom, then the final flow state
    assert states[0] is EngineState.RESUMING and states[-1] is FlowState.SUCCESS
    assert set(states[1:-1]) == {EngineState.SCHEDULING, EngineState.WAITING, EngineState.ANALYZING}
    assert states.count(EngineState.SCHEDULING) >= 3
    assert journal.names("execute") == ["a", "b", "c"]


def test_storage_fetch_fetch_all_and_states(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(
        echo("a", 10, provides="x"), echo("b", {"k1": "v1", "k2": "v2"}, provides={"k1", "k2"})
    )
    engine = dispatcher.load(flow, store={"journal": str(journal), "s": "store-value"})
    engine.run()
    st = engine.storage
    assert st.fetch("x") == 10 and st.fetch("k2") == "v2" and st.fetch("s") == "store-value"
    assert st.fetch_all() == {"journal": str(journal), "s": "store-value", "x": 10, "k1": "v1", "k2": "v2"}
    assert st.get_atom_state("a") is AtomState.SUCCESS
    assert st.get_atom_state("b") == "SUCCESS"  # str enum: TaskFlow's bare strings compare equal
    assert st.get_flow_state() is FlowState.SUCCESS
    with pytest.raises(NotFound, match="nothing"):
        st.fetch("nothing")
    with pytest.raises(NotFound, match="no-such-atom"):
        st.get_atom_state("no-such-atom")


def test_empty_flow_succeeds(dispatcher: Dispatcher) -> None:
    engine = dispatcher.load(LinearFlow("empty"))
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert dispatcher.run(UnorderedFlow("e2"), store={"a": 1}) == {"a": 1}


def test_succeeded_flow_runs_again_without_executing_tasks(dispatcher: Dispatcher, journal: Journal) -> None:
    engine = dispatcher.load(
        LinearFlow("f").add(echo("a", 1, provides="x"), step("b")), store={"journal": str(journal)}
    )
    engine.run()
    assert list(engine.run_iter())[-1] is FlowState.SUCCESS
    engine.run()
    assert journal.names("execute") == ["a", "b"]
    assert engine.storage.fetch("x") == 1


# -- failures and reverting -----------------------------------------------------------------------------


def test_last_failure_reverts_all_in_reverse_order_once(dispatcher: Dispatcher, journal: Journal) -> None:
    names = [f"t{i}" for i in range(1, 6)]
    flow = LinearFlow("f").add(
        *(step(n, value=i) for i, n in enumerate(names[:-1])),
        step(names[-1], value=99, fail="no space left"),
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(DiskFull, match="no space left"):  # the task's own exception, as itself
        engine.run()
    assert journal.names("execute") == names
    assert journal.names("revert") == list(reversed(names))  # each exactly once
    for i, name in enumerate(names[:-1]):
        data = journal.data("revert", name)
        assert data == {"value": i, "result": f"{name}:{i}", "flow_failures": {"t5": DISK_FULL}}
    failed = journal.data("revert", "t5")
    assert failed["value"] == 99
    assert failed["result"] == {"failure": DISK_FULL, "text": "no space left"}
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert set(engine.storage.get_atom_states().values()) == {AtomState.REVERTED}


def test_a_single_failure_among_siblings_is_reraised_as_itself(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = UnorderedFlow("u").add(step("ok"), step("bad", fail="only one"))
    with pytest.raises(DiskFull, match="only one"):
        dispatcher.run(flow, store={"journal": str(journal)})
    assert sorted(journal.names("revert")) == ["bad", "ok"]


def test_atoms_that_never_ran_are_not_reverted(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(step("a"), step("boom", fail="x"), step("never"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(DiskFull):
        engine.run()
    assert journal.names("revert") == ["boom", "a"]
    assert engine.storage.get_atom_state("never") is AtomState.PENDING


def test_failing_revert_gives_flow_failure_and_raises_the_reverts_error_chained_to_the_cause(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("f").add(step("a"), step("b", revert_fail="cannot undo b"), step("c", fail="c failed"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(KeyError, match="cannot undo b") as info:
        engine.run()
    # as TaskFlow, the revert's own exception; the failure that made the flow revert is its context
    assert isinstance(info.value.__context__, DiskFull)
    st = engine.storage
    assert set(st.get_revert_failures()) == {"b"} and set(st.get_execute_failures()) == {"c"}
    assert st.get_flow_state() is FlowState.FAILURE
    assert st.get_atom_state("b") is AtomState.REVERT_FAILURE
    assert st.get_atom_state("c") is AtomState.REVERTED
    # nothing is reverted past a failed revert: b's predecessor a is left as it was
    assert st.get_atom_state("a") is AtomState.SUCCESS
    assert journal.names("revert") == ["c", "b"]


def test_revert_failure_leaves_predecessors_but_reverts_independent_atoms(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    """linear(unordered(linear(a, b), z), c): c fails, b's revert fails; z (independent of b) is reverted,
    a (before b) is left in SUCCESS."""
    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(LinearFlow("ab").add(step("a"), step("b", revert_fail="stuck")), step("z")),
        step("c", fail="c failed"),
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(KeyError, match="stuck"):
        engine.run()
    assert engine.storage.get_atom_states() == {
        "a": AtomState.SUCCESS,
        "b": AtomState.REVERT_FAILURE,
        "z": AtomState.REVERTED,
        "c": AtomState.REVERTED,
    }
    reverted = journal.names("revert")
    assert reverted[0] == "c" and sorted(reverted) == ["b", "c", "z"]
    assert engine.storage.get_flow_state() is FlowState.FAILURE


def test_reverted_flow_can_be_run_again(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(step("a"), step("flaky", fail="first time", fail_times=1))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(DiskFull):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert journal.names("execute") == ["a", "flaky", "a", "flaky"]


def test_run_again_after_failed_revert_retries_the_revert_and_finishes(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("f").add(
        step("a"), step("b", revert_fail="stuck", revert_fail_times=1), step("c", fail="c")
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(KeyError, match="stuck"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    with pytest.raises(DiskFull):  # only the original failure is left
        engine.run()
    assert journal.names("revert") == ["c", "b", "b", "a"]
    assert journal.names("execute") == ["a", "b", "c"]  # nothing executes again
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert set(engine.storage.get_atom_states().values()) == {AtomState.REVERTED}


def test_graph_reverts_in_reverse_dependency_order(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = GraphFlow("g").add(
        step("boom", 0, requires=["d_out"], fail="tail"),
        step("d", 0, provides="d_out", requires=["b_out", "c_out"]),
        step("b", 0, provides="b_out", requires=["a_out"]),
        step("c", 0, provides="c_out", requires=["a_out"]),
        step("a", 0, provides="a_out"),
    )
    with pytest.raises(DiskFull):
        dispatcher.run(flow, store={"journal": str(journal)})
    assert journal.names("execute")[0] == "a"
    seq = journal.seq
    # each revert starts only after every revert of its successors has ended
    assert seq("revert-end", "boom") < seq("revert-start", "d")
    assert seq("revert-end", "d") < seq("revert-start", "b")
    assert seq("revert-end", "d") < seq("revert-start", "c")
    assert seq("revert-end", "b") < seq("revert-start", "a")
    assert seq("revert-end", "c") < seq("revert-start", "a")
    assert sorted(journal.names("revert")) == ["a", "b", "boom", "c", "d"]


# -- retry controllers and deciders ---------------------------------------------------------------------


def test_times_retries_the_scope_until_it_succeeds(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f", retry=retry.Times(3)).add(step("a"), step("flaky", fail="not yet", fail_times=2))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert journal.names("execute") == ["a", "flaky"] * 3
    assert journal.names("revert") == ["flaky", "a"] * 2


def test_times_gives_up_reverts_and_reraises(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f", retry=retry.Times(2)).add(step("a"), step("broken", fail="never works"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(DiskFull, match="never works"):
        engine.run()
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert journal.names("execute") == ["a", "broken"] * 2
    assert journal.names("revert") == ["broken", "a"] * 2


def test_for_each_tries_values_in_turn(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f", retry=retry.ForEach([1, 2, 3], provides="value")).add(
        Step(name="try", inject={"fail": "no", "fail_times": 2})
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.run()
    assert [d["value"] for k, _, d in journal.events if k == "execute"] == [1, 2, 3]
    assert engine.storage.fetch("value") == 3


def test_nested_controllers_inner_always_revert_hands_over_to_outer_times(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("outer", retry=retry.Times(2, name="outer-times")).add(
        step("o1"),
        LinearFlow("inner", retry=retry.AlwaysRevert(name="ar")).add(step("i1", fail="first", fail_times=1)),
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.run()
    assert journal.names("execute") == ["o1", "i1", "o1", "i1"]
    assert journal.names("revert") == ["i1", "o1"]
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_always_revert_all_reverts_everything_whatever_the_outer_controller(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("outer", retry=retry.Times(5, name="outer-times")).add(
        step("o1"), LinearFlow("inner", retry=retry.AlwaysRevertAll(name="all")).add(step("i1", fail="no"))
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(DiskFull):
        engine.run()
    assert journal.names("execute") == ["o1", "i1"]  # the outer Times never retries
    assert journal.names("revert") == ["i1", "o1"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_decider_false_ignores_the_atom_and_everything_after_it(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    a, b, c = step("a", provides="a_out"), step("b", provides="b_out"), step("c")
    g = GraphFlow("g")
    g.add(a, b, c)
    g.link(a, b, decider=lambda history: history["a"] == "never").link(b, c)
    engine = dispatcher.load(LinearFlow("f").add(g, step("after")), store={"journal": str(journal)})
    engine.run()
    assert journal.names("execute") == ["a"]  # decider_depth ALL: every successor is ignored
    states = engine.storage.get_atom_states()
    assert {states[n] for n in ("b", "c", "after")} == {AtomState.IGNORE}
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_decider_depth_atom_ignores_that_atom_only(dispatcher: Dispatcher, journal: Journal) -> None:
    a, b, c = step("a"), step("b"), step("c")
    g = GraphFlow("g")
    g.add(a, b, c)
    g.link(a, b, decider=lambda history: False, decider_depth="atom").link(b, c)
    engine = dispatcher.load(g, store={"journal": str(journal)})
    engine.run()
    assert journal.names("execute") == ["a", "c"]
    assert engine.storage.get_atom_state("b") is AtomState.IGNORE


def test_decider_sees_the_result_and_true_runs_the_atom(dispatcher: Dispatcher, journal: Journal) -> None:
    a, b = step("a"), step("b")
    seen: list[dict[str, Any]] = []

    def decide(history: dict[str, Any]) -> bool:
        seen.append(dict(history))
        return bool(history["a"] == "a:a")

    g = GraphFlow("g")
    g.add(a, b)
    g.link(a, b, decider=decide)
    dispatcher.run(g, store={"journal": str(journal)})
    assert seen == [{"a": "a:a"}]
    assert journal.names("execute") == ["a", "b"]


# -- suspend and resume ---------------------------------------------------------------------------------


def test_suspend_from_a_listener_then_resume(dispatcher: Dispatcher, journal: Journal) -> None:
    names = [f"t{i}" for i in range(1, 7)]
    engine = dispatcher.load(
        LinearFlow("f").add(*(step(n, provides=f"out{n}") for n in names)), store={"journal": str(journal)}
    )
    engine.atom_notifier.register(
        AtomState.SUCCESS, lambda state, details: engine.suspend() if details["atom_name"] == "t3" else None
    )
    flow_states: list[Any] = []
    engine.notifier.register("*", lambda state, details: flow_states.append(state))
    engine.run()  # returns normally on suspend
    st = engine.storage
    assert st.get_flow_state() is FlowState.SUSPENDED
    assert [st.get_atom_state(n) for n in names] == [AtomState.SUCCESS] * 3 + [AtomState.PENDING] * 3
    assert journal.names("execute") == ["t1", "t2", "t3"]
    assert flow_states[-1] is FlowState.SUSPENDED
    engine.run()
    assert st.get_flow_state() is FlowState.SUCCESS
    assert journal.names("execute") == names  # each exactly once
    assert FlowState.RESUMING in flow_states and flow_states[-1] is FlowState.SUCCESS
    assert st.fetch("outt6") == "t6:t6"


def test_suspend_then_resume_with_unordered_flow_runs_each_once(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("f").add(
        step("first"), UnorderedFlow("u").add(*(step(f"u{i}") for i in range(4))), step("last")
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.atom_notifier.register(
        AtomState.SUCCESS,
        lambda state, details: engine.suspend() if details["atom_name"] == "first" else None,
    )
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert journal.names("execute") == ["first"]
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    executed = journal.names("execute")
    assert sorted(executed) == sorted(["first", "last", "u0", "u1", "u2", "u3"]) and executed[-1] == "last"


def test_inject_between_suspend_and_resume(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(step("a"), Echo(name="needs", rebind={"value": "late"}))
    engine = dispatcher.load(flow, store={"journal": str(journal), "late": "early"})
    engine.atom_notifier.register(
        AtomState.SUCCESS, lambda state, details: engine.suspend() if details["atom_name"] == "a" else None
    )
    engine.run()
    engine.storage.inject({"late": "injected"})
    engine.run()
    assert journal.data("execute", "needs") == {"value": "injected"}


def test_suspend_while_reverting_then_resume_finishes_the_revert(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("f").add(step("a"), step("b"), step("c"), step("boom", fail="x"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.atom_notifier.register(
        AtomState.REVERTED, lambda s, d: engine.suspend() if d["atom_name"] == "c" else None
    )
    engine.run()  # suspended: returns without raising
    st = engine.storage
    assert st.get_flow_state() is FlowState.SUSPENDED
    assert journal.names("revert") == ["boom", "c"]
    assert st.get_atom_state("b") is AtomState.SUCCESS
    with pytest.raises(DiskFull):
        engine.run()
    assert journal.names("revert") == ["boom", "c", "b", "a"]
    assert journal.names("execute") == ["a", "b", "c", "boom"]
    assert st.get_flow_state() is FlowState.REVERTED


# -- notifications --------------------------------------------------------------------------------------


def test_flow_and_atom_notifications_in_order(dispatcher: Dispatcher, journal: Journal) -> None:
    engine = dispatcher.load(LinearFlow("f").add(step("a"), step("b")), store={"journal": str(journal)})
    flow_states: list[FlowState] = []
    atom_states: list[tuple[str, AtomState]] = []
    engine.notifier.register("*", lambda state, details: flow_states.append(state))
    engine.atom_notifier.register(
        "*", lambda state, details: atom_states.append((details["atom_name"], state))
    )
    engine.run()
    assert flow_states[0] is FlowState.RUNNING and flow_states[-1] is FlowState.SUCCESS
    assert atom_states == [
        ("a", AtomState.RUNNING),
        ("a", AtomState.SUCCESS),
        ("b", AtomState.RUNNING),
        ("b", AtomState.SUCCESS),
    ]


def test_progress_reaches_the_atom_notifier(dispatcher: Dispatcher) -> None:
    engine = dispatcher.load(LinearFlow("f").add(Progressing(name="prog")))
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_progress(event: str, details: dict[str, Any]) -> None:
        with lock:
            events.append(details)

    engine.atom_notifier.register(notifier.EVENT_UPDATE_PROGRESS, on_progress)
    engine.run()
    assert [d["progress"] for d in events] == [0.25, 0.5, 1.0]
    assert {d["atom_name"] for d in events} == {"prog"}


# -- timeouts and async atoms ---------------------------------------------------------------------------


def sleepy(name: str, timeout: float | None = None, **args: Any) -> Sleepy:
    return Sleepy(name=name, provides=name, inject=args, timeout=timeout)


def async_step(name: str, timeout: float | None = None, **args: Any) -> AsyncStep:
    return AsyncStep(name=name, provides=name, inject={"value": name, **args}, timeout=timeout)


def test_a_timed_out_execute_fails_with_atom_timeout_and_reverts(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("f").add(step("a"), sleepy("slow", timeout=0.4, pause=5.0), step("never"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    started = time.monotonic()
    with pytest.raises(
        AtomTimeout, match=r"execute of atom 'slow' did not finish within its timeout of 0.4s"
    ):
        engine.run()
    # the call (5 s) was not waited for: the run ended before it did (not a time bound, which a loaded
    # machine's slow process start-up could break)
    assert journal.names("execute-end") == []
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert st.get_atom_state("slow") is AtomState.REVERTED and st.get_atom_state("a") is AtomState.REVERTED
    assert journal.names("revert-end") == ["slow", "a"]  # reverted in order, each once
    assert st.get_atom_state("never") is AtomState.PENDING
    # What became of the call: a process is stopped (it never ends); a thread cannot be (it ends later
    # and its result is discarded: the atom stays REVERTED).
    if dispatcher.name == "processes":
        time.sleep(max(0.0, started + 5.5 - time.monotonic()))
        assert journal.names("execute-end") == []
    else:
        wait_until(lambda: journal.names("execute-end") == ["slow"], 8, "the abandoned call to return")
        assert st.get_atom_state("slow") is AtomState.REVERTED


def test_a_timed_out_attempt_goes_through_the_retry_controller(
    dispatcher: Dispatcher, journal: Journal
) -> None:
    flow = LinearFlow("f", retry=retry.Times(3)).add(
        step("a"), sleepy("flaky", timeout=0.5, pause=2.0, slow_times=1)
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert engine.storage.fetch("flaky") == "flaky:slept"
    assert journal.names("execute-start") == ["flaky", "flaky"]
    assert journal.names("revert") == ["a"]  # the timed-out attempt's scope was reverted


def test_a_timed_out_revert_leaves_its_atom_revert_failure(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(
        step("first"), sleepy("stuck", timeout=0.4, revert_pause=2.0), step("boom", fail="x")
    )
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(AtomTimeout, match="revert of atom 'stuck'") as info:
        engine.run()
    assert isinstance(info.value.__context__, DiskFull)  # the failure the flow was reverting for
    st = engine.storage
    assert st.get_flow_state() is FlowState.FAILURE
    assert st.get_atom_state("stuck") is AtomState.REVERT_FAILURE
    assert st.get_atom_state("first") is AtomState.SUCCESS  # held back by the failed revert before it
    assert journal.names("revert") == ["boom"]


def test_default_timeout_bounds_atoms_without_their_own(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(sleepy("slow", pause=2.0))
    engine = dispatcher.load(flow, store={"journal": str(journal)}, default_timeout=0.4)
    with pytest.raises(AtomTimeout, match="'slow'"):
        engine.run()


def test_an_async_atom_is_awaited_and_its_result_stored(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(async_step("a", pause=0.01), echo("b", requires=["a"]))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    engine.run()
    value, thread = engine.storage.fetch("a")
    assert value == "a:a"
    if dispatcher.name == "serial":  # the serial engine runs its loop in its own thread (the caller's)
        assert thread == threading.current_thread().name
    elif dispatcher.name != "workers":  # the engine's loop thread; a worker runs it on its own loop
        assert thread == "flowkit-async"
    assert journal.names("execute") == ["a", "b"]


def test_an_async_failure_reverts_with_an_async_revert(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(async_step("a"), step("b"), async_step("c", fail="async disk full"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(DiskFull, match="async disk full"):
        engine.run()
    assert journal.names("revert") == ["c", "b", "a"]
    assert journal.data("revert", "c")["result"] == {"failure": DISK_FULL, "text": "async disk full"}
    assert journal.data("revert", "a")["result"][0] == "a:a"
    assert set(engine.storage.get_atom_states().values()) == {AtomState.REVERTED}


def test_a_timed_out_async_atom_is_cancelled(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(step("a"), async_step("hang", timeout=0.3, pause=30))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    started = time.monotonic()
    with pytest.raises(AtomTimeout, match="execute of atom 'hang'"):
        engine.run()
    assert time.monotonic() - started < 5
    wait_until(lambda: journal.names("cancelled") == ["hang"], 5, "the coroutine to be cancelled")
    assert journal.names("execute") == ["a"] and journal.names("revert") == ["hang", "a"]


def test_a_timed_out_async_revert_is_cancelled_and_fails(dispatcher: Dispatcher, journal: Journal) -> None:
    flow = LinearFlow("f").add(async_step("a", timeout=0.3, revert_pause=30), step("boom", fail="x"))
    engine = dispatcher.load(flow, store={"journal": str(journal)})
    with pytest.raises(AtomTimeout, match="revert of atom 'a'") as info:
        engine.run()
    assert isinstance(info.value.__context__, DiskFull)
    assert engine.storage.get_atom_state("a") is AtomState.REVERT_FAILURE
    wait_until(lambda: journal.names("revert-cancelled") == ["a"], 5, "the async revert to be cancelled")


def test_a_plain_execute_returning_a_coroutine_fails_naming_the_atom(dispatcher: Dispatcher) -> None:
    engine = dispatcher.load(LinearFlow("f").add(ReturnsCoroutine(name="sneaky")))
    with pytest.raises(CoroutineResult, match="execute of atom 'sneaky' returned a coroutine"):
        engine.run()
    assert engine.storage.get_atom_state("sneaky") is AtomState.REVERTED
