"""``Map`` with persistence: revert of what ran (items latest first, then what ran before the Map), a retry
or a reset running the items again, and a crash (SIGKILL of a child process on SQLite) mid-map or mid-revert
resumed from the saved child flow."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.exceptions import FlowkitError
from flowkit.states import FlowState
from tests.support.journal import Journal
from tests.support.map_flows import crash_flow, hold_each, mapped, most_at_once, run
from tests.support.persistence import fresh_backend, saved_flow
from tests.support.tasks import DiskFull, Hold, Step

REPO = Path(__file__).resolve().parents[1]


def failing_each(fail_at: int) -> Any:
    def each(k: int, item: Any) -> Step:
        extra = {"fail": f"item {k}"} if k == fail_at else {}
        return Step("step", inject={"value": item, **extra}, provides="out")

    return each


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/flows.db"
    else:
        url = request.getfixturevalue("postgres_url")
    fresh_backend(url)
    return url


def test_a_failed_item_reverts_the_items_that_ran_latest_first_then_what_ran_before(
    journal: Journal, backend_url: str
) -> None:
    flow = LinearFlow("f").add(Step("before"), mapped(each=failing_each(3), max_parallel=2), Step("after"))
    engine = engines.load(flow, store={"items": list(range(6)), "journal": str(journal)}, backend=backend_url)
    with pytest.raises(DiskFull, match="item 3"):
        engine.run()
    executed = journal.names("execute")
    assert executed == ["before", "m[0].step", "m[1].step", "m[2].step", "m[3].step"]
    reverted = journal.names("revert")
    assert sorted(reverted) == sorted([*executed])
    succeeded = [n for n in reverted if n in ("m[0].step", "m[1].step", "m[2].step")]
    assert succeeded == ["m[2].step", "m[1].step", "m[0].step"]
    assert reverted[-1] == "before"
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    child_uuid = engine.storage.atom_meta[engine.compilation.index["m"]]["map"]["flow_uuid"]
    backend = engines.persistence.backend_for(backend_url)
    assert saved_flow(backend, child_uuid).state == FlowState.REVERTED


class CrashedChild(NamedTuple):
    """A map flow a child process ran on a SQLite file until its crashing step made the ``marker`` file
    and SIGKILLed the process (a resumed run finds the marker and goes on)."""

    url: str
    flow_uuid: str
    marker: Path
    child: subprocess.CompletedProcess[str]


def _crashed_child(journal: Journal, tmp_path: Path, crash_at: int | None) -> CrashedChild:
    """Run ``tests.support.map_flows`` in a child on a fresh database and wait for it to die: forward
    until item ``crash_at`` (``crash_flow``), or with None, reverting (``revert_crash_flow``). Each crash
    test then resumes the saved flow in this process."""
    url = f"sqlite:///{tmp_path}/flows.db"
    fresh_backend(url)
    marker = tmp_path / "crashed"
    flow_uuid = str(uuid.uuid4())
    args = [url, str(journal), str(marker), flow_uuid]
    command = ["revert", *args] if crash_at is None else [*args, str(crash_at)]
    child = subprocess.run(
        [sys.executable, "-m", "tests.support.map_flows", *command],
        cwd=REPO,
        timeout=60,
        capture_output=True,
        text=True,
    )
    return CrashedChild(url, flow_uuid, marker, child)


class Fails(Task):
    def execute(self, outs: list[Any]) -> None:
        raise DiskFull("after the map")


@pytest.mark.parametrize("kind", ["serial", "threads"])
def test_a_failure_after_the_map_reverts_its_items(journal: Journal, kind: str) -> None:
    flow = LinearFlow("f").add(Step("before"), mapped(max_parallel=1), Fails("boom"))
    engine = engines.load(
        flow,
        store={"items": [1, 2, 3], "journal": str(journal)},
        **({"engine": "parallel", "max_workers": 4} if kind == "threads" else {}),
    )
    with pytest.raises(DiskFull, match="after the map"):
        engine.run()
    assert journal.names("revert") == ["m[2].step", "m[1].step", "m[0].step", "before"]


def test_a_crash_mid_map_resumes_the_same_items_without_running_finished_ones_again(
    journal: Journal, tmp_path: Path
) -> None:
    url, flow_uuid, marker, child = _crashed_child(journal, tmp_path, crash_at=3)
    assert child.returncode == -9, child.stderr
    assert journal.names("execute") == ["before", "m[0].step", "m[1].step", "m[2].step", "m[3].crash"]
    backend = engines.persistence.backend_for(url)
    saved = saved_flow(backend, flow_uuid)
    link = next(ad for ad in saved if ad.name == "m").meta["map"]
    assert link["items"] == 6  # linked before the first item started

    engine = engines.load(
        crash_flow(3),
        store={"marker": str(marker)},
        backend=url,
        flow_detail=saved,
    )
    engine.run()
    executed = journal.names("execute")
    assert executed[5:] == ["m[3].crash", "m[4].step", "m[5].step", "after"]
    assert engine.storage.fetch("outs") == [f"m[{k}].step:{k}" for k in range(3)] + [3] + [
        f"m[{k}].step:{k}" for k in (4, 5)
    ]
    assert saved_flow(backend, link["flow_uuid"]).state == FlowState.SUCCESS


def test_a_resumed_map_whose_items_changed_is_refused(journal: Journal, tmp_path: Path) -> None:
    url, flow_uuid, _, _ = _crashed_child(journal, tmp_path, crash_at=1)
    saved = saved_flow(engines.persistence.backend_for(url), flow_uuid)
    engine = engines.load(crash_flow(1), store={"items": [1, 2]}, backend=url, flow_detail=saved)
    # the Map fails, and so does its revert: the items it ran cannot be rebuilt from the new sequence
    with pytest.raises(FlowkitError, match=r"Map 'm': its saved expansion has 6 items but 'items' now has 2"):
        engine.run()


def test_a_retry_controller_runs_a_failed_map_again_with_the_same_items(
    journal: Journal, backend_url: str
) -> None:
    from flowkit.retry import Times

    def each(k: int, item: Any) -> Step:
        extra = {"fail": "once", "fail_times": 1} if k == 1 else {}
        return Step("step", inject={"value": item, **extra}, provides="out")

    flow = LinearFlow("f", retry=Times(2)).add(mapped(each=each, max_parallel=1))
    engine = engines.load(flow, store={"items": [1, 2, 3], "journal": str(journal)}, backend=backend_url)
    engine.run()
    assert engine.storage.fetch("outs") == ["m[0].step:1", "m[1].step:2", "m[2].step:3"]
    assert journal.names("execute") == ["m[0].step", "m[1].step", "m[0].step", "m[1].step", "m[2].step"]
    assert journal.names("revert") == ["m[1].step", "m[0].step"]


def test_a_crash_while_reverting_a_map_resumes_the_revert_of_its_items(
    journal: Journal, tmp_path: Path
) -> None:
    from tests.support.map_flows import revert_crash_flow

    url, flow_uuid, _, child = _crashed_child(journal, tmp_path, crash_at=None)
    assert child.returncode == -9, child.stderr
    assert journal.names("revert") == ["m[2].step"]  # item 1's revert was under way when it died
    saved = saved_flow(engines.persistence.backend_for(url), flow_uuid)
    engine = engines.load(revert_crash_flow(), backend=url, flow_detail=saved)
    with pytest.raises(RuntimeError, match="after the map"):
        engine.run()
    assert journal.names("revert") == ["m[2].step", "m[1].step", "m[0].step", "before"]
    assert journal.names("execute").count("m[0].step") == 1


def test_a_map_runs_beside_other_branches_on_a_parallel_engine(journal: Journal, backend_url: str) -> None:
    from flowkit import UnorderedFlow

    flow = UnorderedFlow("f").add(
        mapped(each=hold_each, max_parallel=2),
        Hold("side", inject={"value": "s", "seconds": 0.3}, provides="side"),
    )
    store = {"items": list(range(4)), "journal": str(journal)}
    engine = run(
        flow, store, engine="parallel", max_workers=4, backend=backend_url
    )  # both runs write at once
    assert engine.storage.fetch("outs") == [0, 1, 2, 3]
    assert engine.storage.fetch("side") == "s"
    assert most_at_once(journal) == 3  # two items and the sibling


def test_a_reset_flow_runs_its_maps_items_again(journal: Journal, backend_url: str) -> None:
    engine = engines.load(
        LinearFlow("f").add(mapped(max_parallel=2)),
        store={"items": [1, 2], "journal": str(journal)},
        backend=backend_url,
    )
    engine.run()
    engine.reset()
    engine.run()
    assert journal.names("execute") == ["m[0].step", "m[1].step", "m[0].step", "m[1].step"]
    assert engine.storage.fetch("outs") == ["m[0].step:1", "m[1].step:2"]
