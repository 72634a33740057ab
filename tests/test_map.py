"""``Map``: runtime fan-out. Expansion and result order, names and scopes per item, ``max_parallel`` on
every dispatcher, nested Maps and bad input (revert, crash and resume: tests/test_map_saved.py)."""

from __future__ import annotations

import multiprocessing
import pickle
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

from flowkit import LinearFlow, Map, Task, engines
from flowkit.exceptions import FlowkitError, MapError
from flowkit.persistence.models import FlowDetail
from flowkit.states import AtomState
from tests.support.journal import Journal
from tests.support.map_flows import hold_each, mapped, most_at_once, run, step_each
from tests.support.persistence import fresh_backend
from tests.support.tasks import Echo, Step
from tests.support.workers import MEMORY_OPTIONS, MEMORY_TRANSPORT, memory_worker

WORKER_TOPIC = "map"


# -- expansion, names, scopes ---------------------------------------------------------------------------


def test_results_come_in_item_order_with_one_named_copy_per_item(journal: Journal) -> None:
    flow = LinearFlow("f").add(
        mapped(max_parallel=2), Echo("after", rebind={"value": "outs"}, provides="seen")
    )
    engine = run(flow, {"items": [10, 20, 30, 40, 50], "journal": str(journal)})
    expected = [f"m[{k}].step:{v}" for k, v in enumerate([10, 20, 30, 40, 50])]
    assert engine.storage.fetch("outs") == expected
    assert engine.storage.fetch("seen") == expected
    assert sorted(journal.names("execute")) == sorted([f"m[{k}].step" for k in range(5)] + ["after"])


def test_an_empty_sequence_maps_to_an_empty_list(journal: Journal) -> None:
    engine = run(LinearFlow("f").add(mapped(max_parallel=3)), {"items": [], "journal": str(journal)})
    assert engine.storage.fetch("outs") == []


def test_over_may_come_from_an_atom_before_the_map(journal: Journal) -> None:
    flow = LinearFlow("f").add(Echo("specs", inject={"value": ["a", "b"]}, provides="specs"), mapped("specs"))
    engine = run(flow, {"journal": str(journal)})
    assert engine.storage.fetch("outs") == ["m[0].step:a", "m[1].step:b"]


def scoped_each(k: int, item: Any) -> Any:
    """Item 0 provides ``x`` and reads it; item 1 only reads ``x``: it must get the store's, not item 0's."""
    if k == 0:
        return LinearFlow("pair").add(
            Echo("give", inject={"value": "zero"}, provides="x"),
            Step("take", rebind={"value": "x"}, provides="out"),
        )
    return Step("take", rebind={"value": "x"}, provides="out")


@pytest.mark.parametrize("max_parallel", [1, None])
def test_symbols_provided_inside_an_item_are_scoped_to_it(journal: Journal, max_parallel: int | None) -> None:
    flow = LinearFlow("f").add(
        mapped(each=scoped_each, max_parallel=max_parallel),
        Echo("after", rebind={"value": "x"}, provides="y"),
    )
    engine = run(flow, {"items": [0, 1], "x": "outer", "journal": str(journal)})
    assert engine.storage.fetch("outs") == ["m[0].take:zero", "m[1].take:outer"]
    assert engine.storage.fetch("y") == "outer"  # nothing an item provides leaks out of the Map


def test_two_items_providing_the_same_symbol_do_not_clash(journal: Journal) -> None:
    def each(k: int, item: Any) -> Any:
        return LinearFlow("pair").add(
            Echo("give", inject={"value": item * 2}, provides="x"),
            Echo("take", rebind={"value": "x"}, provides="out"),
        )

    engine = run(
        LinearFlow("f").add(mapped(each=each)),
        {"items": [1, 2, 3], "journal": str(journal)},
        engine="parallel",
        max_workers=3,
    )
    assert engine.storage.fetch("outs") == [2, 4, 6]


@pytest.mark.parametrize("kind", ["serial", "threads"])
def test_nested_maps_expand_inside_each_item(
    journal: Journal, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    def inner_each(k: int, item: Any) -> Step:
        return Step("leaf", inject={"value": item}, provides="out")

    def outer_each(k: int, row: Any) -> Any:
        return LinearFlow("row").add(
            Echo("cells", inject={"value": row}, provides="cells"),
            Map("inner", over="cells", each=inner_each, result="out", provides="outs", max_parallel=2),
        )

    flow = LinearFlow("f").add(
        Map("m", over="items", each=outer_each, result="outs", provides="outs", max_parallel=2)
    )
    url = f"sqlite:///{tmp_path}/flows.db"
    fresh_backend(url)
    store = {"items": [[1, 2], [3], []], "journal": str(journal)}
    flow_outs = run(flow, store, backend=url, **_options(kind, request)).storage.fetch("outs")
    assert flow_outs == [["m[0].inner[0].leaf:1", "m[0].inner[1].leaf:2"], ["m[1].inner[0].leaf:3"], []]


# -- max_parallel on every dispatcher -----------------------------------------------------------------


@pytest.fixture(scope="module")
def memory_exchange() -> Iterator[str]:
    exchange = f"fk-map-{uuid.uuid4().hex[:12]}"
    with memory_worker(exchange, WORKER_TOPIC, ["tests.support.tasks"], threads=6):
        yield exchange


def _options(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "serial":
        return {}
    if kind == "threads":
        return {"engine": "parallel", "executor": "threads", "max_workers": 6}
    if kind == "processes":
        return {"engine": "parallel", "executor": "processes", "max_workers": 4}
    return {
        "engine": "worker-based",
        "transport": MEMORY_TRANSPORT,
        "exchange": request.getfixturevalue("memory_exchange"),
        "topics": [WORKER_TOPIC],
        "transition_timeout": 10.0,
        "transport_options": MEMORY_OPTIONS,
    }


@pytest.mark.parametrize("kind", ["serial", "threads", "processes", "workers"])
def test_at_most_max_parallel_items_run_at_once(
    journal: Journal, kind: str, request: pytest.FixtureRequest
) -> None:
    flow = LinearFlow("f").add(mapped(each=hold_each, max_parallel=2))
    engine = run(flow, {"items": list(range(6)), "journal": str(journal)}, **_options(kind, request))
    assert engine.storage.fetch("outs") == list(range(6))
    expected = 1 if kind == "serial" else 2
    assert most_at_once(journal) == expected


def test_without_max_parallel_items_run_side_by_side(journal: Journal) -> None:
    flow = LinearFlow("f").add(mapped(each=hold_each))
    run(flow, {"items": list(range(4)), "journal": str(journal)}, engine="parallel", max_workers=4)
    assert most_at_once(journal) > 2


@pytest.mark.rabbitmq
def test_max_parallel_holds_on_worker_processes_over_rabbitmq(
    journal: Journal, rabbitmq_url: str, tmp_path: Path
) -> None:
    from tests.support.worker_processes import TOPIC, worker_exchange, worker_spawner

    exchanges = worker_exchange(rabbitmq_url)
    exchange = next(exchanges)
    spawners = worker_spawner(rabbitmq_url, exchange, tmp_path)
    spawn = next(spawners)
    try:
        for _ in range(2):
            spawn(threads=3).wait_ready()
        flow = LinearFlow("f").add(mapped(each=hold_each, max_parallel=3))
        engine = run(
            flow,
            {"items": list(range(7)), "journal": str(journal)},
            engine="worker-based",
            transport=rabbitmq_url,
            exchange=exchange,
            topics=[TOPIC],
            transition_timeout=10.0,
        )
        assert engine.storage.fetch("outs") == list(range(7))
        assert most_at_once(journal) == 3
    finally:
        for gen in (spawners, exchanges):
            for _ in gen:
                pass


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"each": "not callable"}, "each must be callable"),
        ({"max_parallel": 0}, "max_parallel must be an int of at least 1"),
        ({"max_parallel": True}, "max_parallel must be an int of at least 1"),
        ({"over": ""}, "over must name the symbol"),
        ({"result": None}, "provides= collects each item's result"),
    ],
)
def test_bad_declarations_are_refused_naming_the_map(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"over": "items", "each": step_each, "result": "out", "provides": "outs", **kwargs}
    with pytest.raises(MapError, match=f"Map 'm': {message}"):
        Map("m", **args)


@pytest.mark.parametrize(
    ("store", "each", "message"),
    [
        ({"items": 5}, step_each, "over .'items'. must be a sequence of items, got int"),
        ({"items": "abc"}, step_each, "over .'items'. must be a sequence of items, got str"),
        ({"items": [1]}, lambda k, item: 42, r"each\(0, \.\.\.\) must return a Task or a Flow, got 42"),
        ({"items": [1]}, lambda k, item: Echo("e"), "item 0 provides no 'out'"),
    ],
)
def test_bad_input_known_before_the_run_is_refused_before_any_task_runs(
    journal: Journal, store: dict[str, Any], each: Any, message: str
) -> None:
    flow = LinearFlow("f").add(Step("before"), mapped(each=each))
    engine = engines.load(flow, store={**store, "journal": str(journal)})
    with pytest.raises(MapError, match=f"Map 'm': {message}"):
        engine.run()
    assert journal.names("execute") == []


def test_each_returning_one_atom_for_two_items_is_refused(journal: Journal) -> None:
    shared = Step("step", provides="out")
    engine = engines.load(LinearFlow("f").add(mapped(each=lambda k, item: shared)), store={"items": [1, 2]})
    with pytest.raises(MapError, match=r"returned atom .* again: build new atoms per item"):
        engine.run()


def test_bad_over_from_an_atom_fails_the_map_and_reverts_what_ran_before(journal: Journal) -> None:
    flow = LinearFlow("f").add(
        Step("before"), Echo("specs", inject={"value": 7}, provides="specs"), mapped("specs")
    )
    engine = engines.load(flow, store={"journal": str(journal)})
    with pytest.raises(MapError, match=r"over .'specs'. must be a sequence"):
        engine.run()
    assert journal.names("revert") == ["before"]
    assert engine.storage.get_atom_state("m") is AtomState.REVERTED


def test_map_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(MapError("m", "over is bad")))
    assert isinstance(err, MapError)
    assert str(err) == "Map 'm': over is bad"


def test_a_map_in_a_process_engine_flow_pickles_without_its_each(journal: Journal) -> None:
    ctx = multiprocessing.get_context("forkserver")
    with futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        flow = LinearFlow("f").add(
            mapped(each=lambda k, item: Step("step", inject={"value": item}, provides="out"))
        )
        engine = run(flow, {"items": [1, 2], "journal": str(journal)}, engine="parallel", executor=pool)
    assert engine.storage.fetch("outs") == ["m[0].step:1", "m[1].step:2"]


def test_a_flow_detail_is_not_needed_for_a_map_in_memory(journal: Journal) -> None:
    detail = FlowDetail("f")
    engine = engines.load(
        LinearFlow("f").add(mapped()),
        store={"items": [1], "journal": str(journal)},
        backend="memory://",
        flow_detail=detail,
    )
    engine.run()
    assert engine.storage.fetch("outs") == ["m[0].step:1"]


def test_the_engines_listeners_hear_the_items_atoms(journal: Journal) -> None:
    engine = engines.load(
        LinearFlow("f").add(mapped(max_parallel=2)), store={"items": [1, 2], "journal": str(journal)}
    )
    heard: list[tuple[str, str]] = []
    engine.atom_notifier.register(
        "*", lambda state, details: heard.append((details["atom_name"], str(state)))
    )
    engine.run()
    assert ("m[0].step", "RUNNING") in heard
    assert ("m[1].step", "SUCCESS") in heard
    assert heard[-1] == ("m", "SUCCESS")


def test_an_item_may_be_a_graph_flow_wired_by_its_symbols(journal: Journal) -> None:
    from flowkit import GraphFlow

    def each(k: int, item: Any) -> Any:
        take = Echo("take", rebind={"value": "x"}, provides="out")
        give = Echo("give", inject={"value": item + 100}, provides="x")
        return GraphFlow("g").add(take, give)  # take runs after give: it needs give's x

    engine = run(
        LinearFlow("f").add(mapped(each=each, max_parallel=2)), {"items": [1, 2, 3], "journal": str(journal)}
    )
    assert engine.storage.fetch("outs") == [101, 102, 103]


def test_an_item_needing_a_symbol_nobody_has_fails_the_map_naming_the_item_atom(journal: Journal) -> None:
    class Needs(Task):
        def execute(self, missing: Any) -> Any:
            return missing

    def each(k: int, item: Any) -> Task:
        return Needs("step", provides="out")

    engine = engines.load(
        LinearFlow("f").add(Step("before"), mapped(each=each)), store={"items": [1], "journal": str(journal)}
    )
    with pytest.raises(FlowkitError, match=r"m\[0\]\.step.*missing|missing.*m\[0\]\.step"):
        engine.run()
    assert journal.names("revert") == ["before"]
