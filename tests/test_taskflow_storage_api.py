"""TaskFlow's read-only Storage surface and the records' pretty text: ``storage.get`` (the execute
outcome, or NotFound when there is none), ``storage.backend`` (the engine's persistence backend, None in
memory) and ``pformat`` on logbooks, flow details and atom details."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.exceptions import FlowkitError, NotFound
from flowkit.failure import Failure
from flowkit.persistence.models import FlowDetail, LogBook, RetryDetail, TaskDetail
from flowkit.states import AtomState
from tests.support.persistence import fresh_backend, saved_flow


class Double(Task):
    def execute(self, x: int) -> int:
        return 2 * x


class Boom(Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


def _two_steps() -> LinearFlow:
    return LinearFlow("pair").add(Double("double", provides="y"), Double("again", rebind={"x": "y"}))


def test_get_is_the_execute_result_once_the_atom_succeeded() -> None:
    engine = engines.load(_two_steps(), store={"x": 3})
    engine.run()
    assert engine.storage.get("double") == 6
    assert engine.storage.get("again") == 12
    assert engine.storage.get_execute_result("again") == 12


def test_get_before_the_atom_ran_is_not_found_naming_its_state() -> None:
    engine = engines.load(_two_steps(), store={"x": 3})
    engine.prepare()
    with pytest.raises(NotFound, match=r"'double'.*PENDING"):
        engine.storage.get("double")
    assert engine.storage.get_result("double") is None  # the lenient read stays as it was


def test_get_of_a_failed_atom_is_its_failure_and_of_a_reverted_one_is_not_found() -> None:
    engine = engines.load(LinearFlow("f").add(Double("double"), Boom("boom")), store={"x": 1})
    with pytest.raises(RuntimeError):
        engine.run()
    failure = engine.storage.get("boom")
    assert isinstance(failure, Failure) and failure.check(RuntimeError)
    assert engine.storage.get_atom_state("double") is AtomState.REVERTED
    with pytest.raises(NotFound, match="REVERTED"):
        engine.storage.get("double")


def test_get_of_an_unknown_atom_is_not_found() -> None:
    engine = engines.load(_two_steps(), store={"x": 3})
    engine.prepare()
    with pytest.raises(NotFound, match="nope"):
        engine.storage.get("nope")
    assert issubclass(NotFound, FlowkitError)


def test_backend_is_a_memory_view_in_memory_and_the_engines_backend_when_saved(tmp_path: Path) -> None:
    engine = engines.load(_two_steps(), store={"x": 3})
    engine.prepare()
    assert engine.storage.saved_backend is None
    assert engine.storage.backend.memory.ls("/") == ["books", "flow_details", "atom_details"]

    backend = fresh_backend(f"sqlite:///{tmp_path}/flows.db")
    saved = engines.load(_two_steps(), store={"x": 3}, backend=backend)
    saved.prepare()
    assert saved.storage.backend is backend
    saved.run()
    detail = saved_flow(backend, saved.storage.flow_uuid)
    assert {ad.name: ad.state for ad in detail} == {"double": AtomState.SUCCESS, "again": AtomState.SUCCESS}


_WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _book() -> LogBook:
    book = LogBook("book", "b-1", meta={"owner": "ops"}, created_at=_WHEN)
    flow = book.add(FlowDetail("flow", "f-1", state="SUCCESS"))
    flow.add(TaskDetail("t", "t-1", state="SUCCESS", results=42, version="1.2", meta={"progress": 0.5}))
    flow.add(RetryDetail("r", "r-1", state="FAILURE", failure=Failure.from_exception(ValueError("x"))))
    flow.add(TaskDetail("v", "v-1", version=(2, 1)))  # type: ignore[arg-type]  # as tasks declare it
    return book


def test_atom_detail_pformat_lists_its_fields_and_progress_as_a_percentage() -> None:
    task = _book().find("f-1").find("t-1")  # type: ignore[union-attr]
    assert task is not None
    assert task.pformat(linesep="\n") == (
        "TaskDetail: 't'\n"
        " - uuid = t-1\n"
        " - state = SUCCESS\n"
        " - version = 1.2\n"
        " - results = 42\n"
        " - failure = False\n"
        " - metadata:\n"
        "   + progress = 50.00%"
    )


def test_logbook_pformat_is_an_indented_tree_of_its_flows_and_atoms() -> None:
    when = "2026-01-02T03:04:05"  # UTC, printed without its offset as TaskFlow prints its naive UTC times
    assert _book().pformat(linesep="\n").splitlines() == [
        "LogBook: 'book'",
        " - uuid = b-1",
        " - metadata:",
        "   + owner = ops",
        f" - created_at = {when}",
        f" - updated_at = {when}",
        " FlowDetail: 'flow'",
        "  - uuid = f-1",
        "  - state = SUCCESS",
        "  TaskDetail: 't'",
        "   - uuid = t-1",
        "   - state = SUCCESS",
        "   - version = 1.2",
        "   - results = 42",
        "   - failure = False",
        "   - metadata:",
        "     + progress = 50.00%",
        "  RetryDetail: 'r'",
        "   - uuid = r-1",
        "   - state = FAILURE",
        "   - version = None",
        "   - results = None",
        "   - failure = True",
        "  TaskDetail: 'v'",
        "   - uuid = v-1",
        "   - state = PENDING",
        "   - version = 2.1",
        "   - results = None",
        "   - failure = False",
    ]


def test_flow_detail_pformat_of_a_saved_run_names_every_atom(tmp_path: Path) -> None:
    backend = fresh_backend(f"sqlite:///{tmp_path}/flows.db")
    engine = engines.load(_two_steps(), store={"x": 3}, backend=backend)
    engine.run()
    text = saved_flow(backend, engine.storage.flow_uuid).pformat(indent=2, linesep="|")
    parts = text.split("|")
    assert parts[0] == "  FlowDetail: 'pair'"
    assert "   - state = SUCCESS" in parts
    assert "   TaskDetail: 'double'" in parts and "   TaskDetail: 'again'" in parts
    assert "    - results = 12" in parts


def test_fetch_all_lists_the_store_then_each_symbol_in_the_order_the_atoms_run() -> None:
    from flowkit import GraphFlow

    class Adder(Task):
        def execute(self, x: int, y: int) -> int:
            return x + y

    flow = GraphFlow("g").add(
        Adder("late", provides="c", rebind=["a", "b"]),  # declared first, runs after "early"
        Adder("early", provides="a", rebind=["s1", "s2"]),
        Adder("last", provides="d", rebind=["c", "c"]),
    )
    engine = engines.load(flow, store={"s1": 1, "s2": 2, "b": 10})
    engine.run()
    assert list(engine.storage.fetch_all().items()) == [
        ("s1", 1), ("s2", 2), ("b", 10), ("a", 3), ("c", 13), ("d", 26),
    ]  # fmt: skip
