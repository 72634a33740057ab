"""Group commit (flowkit.engines.together): a parallel engine that finds several completions queued
saves them in one transaction, and acts on none of them (listeners, successors) before it is saved."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines
from flowkit.exceptions import StorageError
from flowkit.persistence.backends import Backend
from flowkit.states import AtomState
from tests.support.persistence import SQL_BACKEND_KINDS, recorded_statements, saved_states

WIDTH = 4


@pytest.fixture(params=SQL_BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Group commit is one SQL transaction: the SQL backends alone (``backend`` is conftest's)."""
    return str(request.param)


class Quick(Task):
    def execute(self) -> str:
        return self.name


def _held_back_flow() -> Any:
    """WIDTH quick tasks, then one that depends on them all. The engine is held in the last start's
    RUNNING listener long enough for the others to finish: their completions are queued together."""
    return LinearFlow("g").add(
        UnorderedFlow("wide").add(*(Quick(f"t{i}") for i in range(WIDTH))), Quick("after")
    )


def _hold_last_start(engine: Any) -> None:
    def slow(state: AtomState, details: dict[str, Any]) -> None:
        if details["atom_name"] == f"t{WIDTH - 1}":
            time.sleep(0.5)

    engine.atom_notifier.register(AtomState.RUNNING, slow)


def test_queued_completions_are_saved_in_one_transaction_before_any_is_acted_on(backend: Backend) -> None:
    engine = engines.load(_held_back_flow(), backend=backend, engine="parallel", max_workers=WIDTH)
    _hold_last_start(engine)
    flow_uuid = engine._recorder.flow_detail.uuid  # type: ignore[attr-defined]
    seen_saved: dict[str, str] = {}

    def on_success(state: AtomState, details: dict[str, Any]) -> None:  # the database, read afresh
        seen_saved[details["atom_name"]] = saved_states(backend, flow_uuid)[details["atom_name"]]

    engine.atom_notifier.register(AtomState.SUCCESS, on_success)
    with recorded_statements(backend) as statements:
        engine.run()
    names = [f"t{i}" for i in range(WIDTH)] + ["after"]
    assert saved_states(backend, flow_uuid) == dict.fromkeys(names, "SUCCESS")
    assert seen_saved == dict.fromkeys(names, "SUCCESS")  # every listener saw its own SUCCESS saved
    dialect = backend.engine.dialect.name  # type: ignore[attr-defined]
    begin = "BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN"
    # each statement apart: on PostgreSQL a message may carry several (the BEGIN goes with the first)
    statements = [part for message in statements for part in message.split("; ")]
    groups = []
    for k, text in enumerate(statements):
        if text == begin:
            end = statements.index("COMMIT", k)
            groups.append(len(statements[k + 1 : end]))
    assert max(groups, default=0) >= WIDTH - 1  # the queued completions: one transaction


def test_a_failed_group_commit_stops_the_engine_and_memory_keeps_what_is_saved(backend: Backend) -> None:
    engine = engines.load(_held_back_flow(), backend=backend, engine="parallel", max_workers=WIDTH)
    _hold_last_start(engine)
    recorder = engine._recorder  # type: ignore[attr-defined]
    real = recorder.commit_held

    def broken() -> None:
        if recorder._held and len(recorder._held) > 1:
            recorder._held = None
            raise StorageError("the database went away (test)")
        real()

    recorder.commit_held = broken
    with pytest.raises(StorageError, match="went away"):
        engine.run()
    flow_uuid = recorder.flow_detail.uuid
    saved = saved_states(backend, flow_uuid)
    in_memory = {n: engine.storage.get_atom_state(n).value for n in saved}
    assert in_memory == saved  # nothing in memory claims a SUCCESS the database does not have
    assert "RUNNING" in saved.values()
