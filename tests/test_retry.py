"""Retry controllers: Times, ForEach, ParameterizedForEach, AlwaysRevert(All), nesting, custom, delays."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines, retry
from flowkit.exceptions import InvalidFlowError, WrappedFailure
from flowkit.failure import Failure
from flowkit.retry import History
from flowkit.states import AtomState, FlowState


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


class Book:
    """Counts executions and reverts per atom name, and keeps what each execution was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.executed: Counter[str] = Counter()
        self.reverted: Counter[str] = Counter()
        self.args: dict[str, list[dict[str, Any]]] = {}
        self.times: dict[str, list[float]] = {}

    def ran(self, name: str, kwargs: dict[str, Any]) -> None:
        with self.lock:
            self.executed[name] += 1
            self.args.setdefault(name, []).append(dict(kwargs))
            self.times.setdefault(name, []).append(time.monotonic())


class Job(Task):
    """Records its runs; fails with ``fail`` while ``fail_when(kwargs)`` is true."""

    def __init__(self, book: Book, fail_when=None, fail: type[Exception] = Flaky, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book = book
        self.fail_when = fail_when
        self.fail = fail

    def execute(self, **kwargs):
        self.book.ran(self.name, kwargs)
        if self.fail_when is not None and self.fail_when(kwargs):
            raise self.fail(f"{self.name} failed with {kwargs}")
        return self.name

    def revert(self, **kwargs):
        with self.book.lock:
            self.book.reverted[self.name] += 1


def always(_kwargs: dict[str, Any]) -> bool:
    return True


@pytest.fixture
def book() -> Book:
    return Book()


class RecordingTimes(retry.Times):
    """Times that records the calls of its revert."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reverts: list[int] = []

    def revert(self, history, *args, **kwargs):
        self.reverts.append(len(history))


def test_times_retries_then_gives_up(book):
    controller = RecordingTimes(3, name="times", provides="attempt")
    flow = LinearFlow("f").add(
        Job(book, name="before"),
        LinearFlow("sub", retry=controller).add(
            Job(book, name="x", requires=["attempt"]),
            Job(book, name="boom", fail_when=always),
        ),
    )
    engine = engines.load(flow)
    with pytest.raises(Flaky):
        engine.run()
    assert book.executed == {"before": 1, "x": 3, "boom": 3}
    assert [a["attempt"] for a in book.args["x"]] == [1, 2, 3]
    history = engine.storage.get_retry_history("times")
    assert len(history) == 3
    for attempt, (result, failures) in enumerate(history, start=1):
        assert result == attempt
        assert list(failures) == ["boom"]
        assert isinstance(failures["boom"], Failure)
        assert failures["boom"].check(Flaky)
    assert list(history.provides_iter()) == [1, 2, 3]
    assert history.caused_by(Flaky)
    assert not history.caused_by(Fatal)
    # the controller's revert is called once, when it gives up
    assert controller.reverts == [3]
    # x was reverted after each failed attempt; before, outside the subflow, once at the end
    assert book.reverted == {"x": 3, "boom": 3, "before": 1}
    st = engine.storage
    assert st.get_flow_state() is FlowState.REVERTED
    assert st.get_atom_state("times") is AtomState.REVERTED
    assert st.get_atom_state("before") is AtomState.REVERTED


def test_times_provides_attempt_number_and_succeeds(book):
    flow = LinearFlow("sub", retry=retry.Times(attempts=5, provides="attempt")).add(
        Job(book, name="work", requires=["attempt"], fail_when=lambda kw: kw["attempt"] < 3)
    )
    engine = engines.load(flow)
    engine.run()
    assert [a["attempt"] for a in book.args["work"]] == [1, 2, 3]
    assert engine.storage.fetch("attempt") == 3
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert book.reverted == {"work": 2}


def test_times_one_attempt_never_retries(book):
    flow = LinearFlow("sub", retry=retry.Times()).add(Job(book, name="boom", fail_when=always))
    with pytest.raises(Flaky):
        engines.run(flow)
    assert book.executed == {"boom": 1}


def test_for_each_tries_values_in_turn(book):
    flow = LinearFlow("sub", retry=retry.ForEach(values=["az1", "az2", "az3"], provides="zone")).add(
        Job(book, name="place", requires=["zone"], fail_when=lambda kw: kw["zone"] != "az2")
    )
    out = engines.run(flow)
    assert [a["zone"] for a in book.args["place"]] == ["az1", "az2"]
    assert out["zone"] == "az2"


def test_for_each_gives_up_after_every_value(book):
    controller = retry.ForEach(values=["a", "b"], name="each", provides="zone")
    flow = LinearFlow("sub", retry=controller).add(
        Job(book, name="place", requires=["zone"], fail_when=always)
    )
    engine = engines.load(flow)
    with pytest.raises(Flaky):
        engine.run()
    assert [a["zone"] for a in book.args["place"]] == ["a", "b"]
    assert list(engine.storage.get_retry_history("each").provides_iter()) == ["a", "b"]


def test_for_each_rejects_a_string(book):
    with pytest.raises(InvalidFlowError):
        retry.ForEach(values="abc")


def test_parameterized_for_each_takes_values_from_store(book):
    controller = retry.ParameterizedForEach(rebind=["zones"], provides="zone")
    assert "zones" in controller.requires
    flow = LinearFlow("sub", retry=controller).add(
        Job(book, name="place", requires=["zone"], fail_when=lambda kw: kw["zone"] != "z3")
    )
    out = engines.run(flow, store={"zones": ["z1", "z2", "z3", "z4"]})
    assert [a["zone"] for a in book.args["place"]] == ["z1", "z2", "z3"]
    assert out["zone"] == "z3"


def test_parameterized_for_each_takes_values_from_an_earlier_atom(book):
    class Zones(Task):
        default_provides = "zones"

        def execute(self):
            return ("q1", "q2")

    flow = LinearFlow("f").add(
        Zones(name="zones"),
        LinearFlow("sub", retry=retry.ParameterizedForEach(rebind=["zones"], provides="zone")).add(
            Job(book, name="place", requires=["zone"], fail_when=lambda kw: kw["zone"] == "q1")
        ),
    )
    assert engines.run(flow)["zone"] == "q2"


def test_always_revert_reverts_everything_that_ran_including_outside_the_subflow(book):
    flow = LinearFlow("f").add(
        Job(book, name="before1"),
        UnorderedFlow("side").add(Job(book, name="before2")),
        LinearFlow("sub", retry=retry.AlwaysRevert(name="ar")).add(
            Job(book, name="inside"), Job(book, name="boom", fail_when=always)
        ),
        Job(book, name="after"),
    )
    engine = engines.load(flow)
    with pytest.raises(Flaky):
        engine.run()
    states = engine.storage.get_atom_states()
    assert states["before1"] is AtomState.REVERTED
    assert states["before2"] is AtomState.REVERTED
    assert states["inside"] is AtomState.REVERTED
    assert states["boom"] is AtomState.REVERTED
    assert states["ar"] is AtomState.REVERTED
    assert states["after"] is AtomState.PENDING
    assert book.executed == {"before1": 1, "before2": 1, "inside": 1, "boom": 1}
    assert book.reverted == {"before1": 1, "before2": 1, "inside": 1, "boom": 1}
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_always_revert_hands_failure_to_the_outer_controller(book):
    flow = LinearFlow("outer", retry=retry.Times(2, name="outer-times", provides="outer_attempt")).add(
        Job(book, name="o1"),
        LinearFlow("inner", retry=retry.AlwaysRevert(name="ar")).add(
            Job(book, name="i1", requires=["outer_attempt"], fail_when=lambda kw: kw["outer_attempt"] == 1)
        ),
    )
    engine = engines.load(flow)
    engine.run()
    assert book.executed == {"o1": 2, "i1": 2}
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_always_revert_all_ignores_outer_controllers(book):
    flow = LinearFlow("outer", retry=retry.Times(5, name="outer-times")).add(
        Job(book, name="o1"),
        LinearFlow("inner", retry=retry.AlwaysRevertAll(name="ara")).add(
            Job(book, name="boom", fail_when=always)
        ),
    )
    outer = LinearFlow("top").add(Job(book, name="top"), flow)
    engine = engines.load(outer)
    with pytest.raises(Flaky):
        engine.run()
    assert book.executed == {"top": 1, "o1": 1, "boom": 1}
    assert book.reverted == {"top": 1, "o1": 1, "boom": 1}
    states = engine.storage.get_atom_states()
    assert set(states.values()) == {AtomState.REVERTED}
    assert len(engine.storage.get_retry_history("outer-times")) == 1


def test_times_revert_all_ignores_outer_controllers(book):
    flow = LinearFlow("outer", retry=retry.Times(3, name="outer-times")).add(
        LinearFlow("inner", retry=retry.Times(2, revert_all=True, name="inner-times")).add(
            Job(book, name="boom", fail_when=always)
        ),
    )
    with pytest.raises(Flaky):
        engines.run(flow)
    assert book.executed == {"boom": 2}


def _nested(book: Book) -> LinearFlow:
    return LinearFlow("outer", retry=retry.Times(2, name="outer-times")).add(
        Job(book, name="o1"),
        LinearFlow("inner", retry=retry.Times(2, name="inner-times")).add(
            Job(book, name="i1"), Job(book, name="boom", fail_when=always)
        ),
    )


def test_nested_times_outer_retries_whole_subflow(book):
    engine = engines.load(_nested(book))
    with pytest.raises(Flaky):
        engine.run()
    assert book.executed["o1"] == 2  # the outer controller ran its subflow twice
    assert len(engine.storage.get_retry_history("outer-times")) == 2
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_nested_times_inner_gets_fresh_attempts_on_each_outer_attempt(book):
    engine = engines.load(_nested(book))
    with pytest.raises(Flaky):
        engine.run()
    # outer attempt 1: o1, (i1, boom) x 2; outer attempt 2: o1, (i1, boom) x 2
    assert book.executed == {"o1": 2, "i1": 4, "boom": 4}
    assert len(engine.storage.get_retry_history("inner-times")) == 2


class SmartRetry(retry.Retry):
    """Retries Flaky up to 3 attempts, reverts everything on Fatal; provides a label per attempt."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reverted_with: list[list[tuple[Any, list[str]]]] = []
        self.decisions: list[retry.Decision] = []

    def execute(self, history: History, base):
        return f"{base}-{len(history) + 1}"

    def on_failure(self, history: History, base):
        if history.caused_by(Fatal):
            decision = retry.REVERT_ALL
        elif len(history) < 3:
            decision = retry.RETRY
        else:
            decision = retry.REVERT
        self.decisions.append(decision)
        return decision

    def revert(self, history: History, base, **kwargs):
        self.reverted_with.append([(result, sorted(failures)) for result, failures in history])


def test_custom_retry_uses_history(book):
    controller = SmartRetry(name="smart", provides="label")
    flow = LinearFlow("sub", retry=controller).add(
        Job(book, name="work", requires=["label"], fail_when=lambda kw: kw["label"] != "srv-3")
    )
    engine = engines.load(flow, store={"base": "srv"})
    engine.run()
    assert [a["label"] for a in book.args["work"]] == ["srv-1", "srv-2", "srv-3"]
    assert controller.decisions == [retry.RETRY, retry.RETRY]
    assert controller.reverted_with == []
    history = engine.storage.get_retry_history("smart")
    assert [r for r, _ in history] == ["srv-1", "srv-2", "srv-3"]
    assert [sorted(f) for _, f in history] == [["work"], ["work"], []]


def test_custom_retry_gives_up_and_is_reverted_with_full_history(book):
    controller = SmartRetry(name="smart", provides="label")
    flow = LinearFlow("sub", retry=controller).add(Job(book, name="work", fail_when=always))
    with pytest.raises(Flaky):
        engines.run(flow, store={"base": "b"})
    assert controller.decisions == [retry.RETRY, retry.RETRY, retry.REVERT]
    assert controller.reverted_with == [[("b-1", ["work"]), ("b-2", ["work"]), ("b-3", ["work"])]]


def test_custom_retry_reverts_all_on_fatal(book):
    controller = SmartRetry(name="smart")
    flow = LinearFlow("outer", retry=retry.Times(4, name="outer")).add(
        LinearFlow("sub", retry=controller).add(Job(book, name="work", fail_when=always, fail=Fatal))
    )
    with pytest.raises(Fatal):
        engines.run(flow, store={"base": "b"})
    assert controller.decisions == [retry.REVERT_ALL]
    assert book.executed == {"work": 1}


def test_retry_on_failure_that_raises_reverts_everything(book):
    class Broken(retry.Retry):
        def on_failure(self, history, *args, **kwargs):
            raise RuntimeError("controller broke")

    flow = LinearFlow("f").add(
        Job(book, name="before"),
        LinearFlow("sub", retry=Broken(name="broken")).add(Job(book, name="boom", fail_when=always)),
    )
    engine = engines.load(flow)
    with pytest.raises(WrappedFailure) as info:
        engine.run()
    assert {f.atom_name for f in info.value} == {"boom", "broken"}
    assert [f.exception_str for f in info.value if f.check(RuntimeError)] == ["controller broke"]
    assert info.value.check(Flaky) is not None
    assert book.reverted == {"before": 1, "boom": 1}
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_retry_under_parallel_engine(book):
    flow = LinearFlow("sub", retry=retry.Times(3, provides="attempt")).add(
        UnorderedFlow("u").add(
            Job(book, name="steady"),
            Job(book, name="work", requires=["attempt"], fail_when=lambda kw: kw["attempt"] < 2),
        )
    )
    engine = engines.load(flow, engine="parallel", max_workers=2)
    engine.run()
    assert book.executed == {"steady": 2, "work": 2}
    assert book.reverted == {"steady": 1, "work": 1}


def test_retry_delay_with_backoff_grows_between_attempts(book):
    flow = LinearFlow("sub", retry=retry.Times(3, delay=0.05, backoff=2)).add(
        Job(book, name="boom", fail_when=always)
    )
    with pytest.raises(Flaky):
        engines.run(flow)
    t = book.times["boom"]
    assert len(t) == 3
    gap1, gap2 = t[1] - t[0], t[2] - t[1]
    assert gap1 >= 0.05  # the delay is a lower bound
    assert gap2 >= 0.1
    assert gap2 > gap1


def test_delay_before_math():
    r = retry.Times(5, delay=1.0, backoff=2.0)
    assert r.delay_before(1) == 0.0
    assert r.delay_before(2) == 1.0
    assert r.delay_before(3) == 2.0
    assert r.delay_before(4) == 4.0
    capped = retry.Times(5, delay=1.0, backoff=3.0, max_delay=5.0)
    assert [capped.delay_before(a) for a in (2, 3, 4, 5)] == [1.0, 3.0, 5.0, 5.0]
    assert retry.Times(5).delay_before(3) == 0.0


def test_delay_before_jitter_bounds(monkeypatch):
    r = retry.Times(5, delay=1.0, backoff=2.0, jitter=0.5)
    rng = random.Random(1234)
    monkeypatch.setattr(retry.random, "random", rng.random)
    samples = [r.delay_before(3) for _ in range(500)]
    assert all(2.0 <= s <= 3.0 for s in samples)
    assert max(samples) - min(samples) > 0.5  # jitter actually spreads the waits
    monkeypatch.setattr(retry.random, "random", lambda: 1.0)
    assert r.delay_before(3) == pytest.approx(3.0)
    monkeypatch.setattr(retry.random, "random", lambda: 0.0)
    assert r.delay_before(3) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs", [{"delay": -1}, {"backoff": 0.5}, {"jitter": -0.1}, {"max_delay": -1}, {"attempts": -1}]
)
def test_bad_retry_parameters_are_rejected(kwargs):
    with pytest.raises(InvalidFlowError):
        retry.Times(**kwargs)
