"""shared/API.md, the public contract, exercised as written (embedded services only: SQLite).

Outside acceptance checks write against API.md: if a name or behaviour there changes, this
file fails first.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import flowkit
from flowkit import Failure, Task, engines, notifier, retry, states
from flowkit.exceptions import FlowkitError, WrappedFailure
from flowkit.patterns import graph_flow, linear_flow, unordered_flow
from flowkit.task import FunctorTask

CALLS: list[tuple[Any, ...]] = []


class CreateServer(Task):
    default_provides = "server_id"

    def execute(self, node_id, flavor="small"):
        CALLS.append(("create", node_id, flavor))
        return f"srv-{node_id}-{flavor}"

    def revert(self, node_id, result, flow_failures, **kwargs):
        CALLS.append(("revert", node_id, result, sorted(flow_failures)))


class Boom(Task):
    def execute(self, server_id):
        raise RuntimeError(f"cannot configure {server_id}")


def make_task() -> CreateServer:
    return CreateServer(
        name="create-node-1",
        inject={"node_id": 1},
        rebind={"flavor": "big_flavor"},
        requires=(),
        provides=None,
    )


def test_names_and_aliases() -> None:
    assert CreateServer().name.endswith("CreateServer")
    assert linear_flow.Flow is flowkit.LinearFlow
    assert unordered_flow.Flow is flowkit.UnorderedFlow
    assert graph_flow.Flow is flowkit.GraphFlow
    assert issubclass(WrappedFailure, FlowkitError)
    assert [s.value for s in states.FlowState] == [
        "PENDING", "RUNNING", "REVERTING", "SUCCESS", "FAILURE", "REVERTED", "SUSPENDED", "RESUMING",
    ]  # fmt: skip
    assert {s.value for s in states.AtomState} == {
        "PENDING", "RUNNING", "SUCCESS", "FAILURE", "REVERTING", "REVERTED", "REVERT_FAILURE",
        "RETRYING", "IGNORE",
    }  # fmt: skip
    retry.Times(attempts=5, revert_all=False, provides="attempt")
    retry.ForEach(values=["az1", "az2"], provides="zone")
    retry.ParameterizedForEach(rebind=["zones"], provides="zone")
    retry.AlwaysRevert()
    retry.AlwaysRevertAll()


def test_engines_run_load_storage_and_notifiers() -> None:
    flow = linear_flow.Flow("create-cluster", retry=None).add(unordered_flow.Flow("nodes").add(make_task()))
    assert engines.run(flow, store={"big_flavor": "xl"}) == {"big_flavor": "xl", "server_id": "srv-1-xl"}
    engine = engines.load(flow, store={"big_flavor": "xl"}, engine="serial")
    engine.compile()
    engine.prepare()
    engine.validate()
    seen: list[tuple[Any, ...]] = []
    engine.notifier.register(
        notifier.ANY, lambda state, details: seen.append(("flow", state, details["flow_name"]))
    )
    engine.atom_notifier.register(
        notifier.ANY,
        lambda state, details: seen.append(
            (state, details["atom_name"], details["task_name"], details["result"])
        ),
    )
    assert list(engine.run_iter())[-1] == states.SUCCESS
    assert engine.storage.fetch("server_id") == "srv-1-xl"
    assert engine.storage.fetch_all()["server_id"] == "srv-1-xl"
    assert engine.storage.get_atom_state("create-node-1") == states.SUCCESS
    assert engine.storage.get_flow_state() == states.SUCCESS
    assert ("SUCCESS", "create-node-1", "create-node-1", "srv-1-xl") in seen
    assert ("flow", "SUCCESS", "create-cluster") in seen
    parallel = engines.load(
        flow, engine="parallel", executor="threads", max_workers=8, store={"big_flavor": "s"}
    )
    parallel.run()
    assert parallel.storage.fetch("server_id") == "srv-1-s"


def test_a_failure_reverts_and_raises_the_task_own_exception() -> None:
    CALLS.clear()
    flow = linear_flow.Flow("f").add(make_task(), Boom("configure"))
    engine = engines.load(flow, store={"big_flavor": "xl"})
    try:
        engine.run()
    except RuntimeError as exc:
        assert "srv-1-xl" in str(exc)
    else:  # pragma: no cover - the contract says it raises
        raise AssertionError("run() should raise the task's own exception")
    assert ("revert", 1, "srv-1-xl", ["configure"]) in CALLS
    assert engine.storage.get_flow_state() == states.REVERTED


def test_decider_history_and_ignore() -> None:
    histories: list[dict[str, Any]] = []

    def decider(history: dict[str, Any]) -> bool:
        histories.append(history)
        return False

    a = FunctorTask(lambda: 1, name="a", provides="x")
    b = FunctorTask(lambda: 2, name="b")
    c = FunctorTask(lambda x: 3, name="c")
    g = graph_flow.Flow("g").add(a, b, c)
    g.link(a, c, decider=decider, decider_depth="ALL")
    engine = engines.load(g)
    engine.run()
    assert histories == [{"a": 1}]
    assert engine.storage.get_atom_state("c") == states.IGNORE
    assert engine.storage.get_flow_state() == states.SUCCESS


def test_failure_as_json() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    assert failure.check(ValueError) and failure.exception_str == "boom" and failure.traceback_str
    assert Failure.from_dict(failure.to_dict()) == failure
    assert Failure.from_exception(KeyError("k")).check(LookupError)


def test_persistence_and_job_board_on_sqlite(tmp_path: Path) -> None:
    from flowkit.jobboard import backends as boards
    from flowkit.persistence import backends, models

    backend = backends.fetch(f"sqlite:///{tmp_path}/flowkit.db")
    with backend.get_connection() as conn:
        conn.upgrade()
    conn = backend.get_connection()
    conn.upgrade()
    book = models.LogBook("cluster-42", uuid=None)
    fd = models.FlowDetail("create-cluster", uuid=str(uuid.uuid4()))
    book.add(fd)
    conn.save_logbook(book)
    flow = linear_flow.Flow("create-cluster").add(make_task())
    engines.load(flow, backend=backend, book=book, flow_detail=fd, store={"big_flavor": "xl"}).run()
    saved = conn.get_logbook(book.uuid).find(fd.uuid)
    assert saved.state == states.SUCCESS
    assert [(ad.name, ad.state, ad.results, ad.failure) for ad in saved] == [
        ("create-node-1", states.SUCCESS, "srv-1-xl", None)
    ]

    board = boards.fetch("provisioning", f"sqlite:///{tmp_path}/board.db", persistence=backend)
    board.connect()
    job = board.post("create-cluster-42", book=book, details={"store": {"big_flavor": "xl"}})
    posted = board.post_flow("flowkit.demo:create_cluster", store={"cluster_name": "x"})
    board.claim(job, "conductor-a")
    assert board.find_owner(job) == "conductor-a"
    board.consume(job, "conductor-a")
    unclaimed = list(board.iterjobs(only_unclaimed=True, ensure_fresh=True))
    assert [(j.uuid, j.name, j.state) for j in unclaimed] == [(posted.uuid, posted.name, "UNCLAIMED")]
    assert unclaimed[0].details["store"] == {"cluster_name": "x"}
    board.close()
    conn.close()
    backend.close()
