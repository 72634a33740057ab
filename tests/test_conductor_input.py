"""A real conductor process (every board, PostgreSQL persistence) fed jobs it must not run as given.

- A factory reached *through* an allowed module (``tests.allowlist_flows:os.system``) once ran a shell
  command on the conductor before the job was set aside: each such job here would create a marker
  file if it ran; none may exist, and every one is set aside at once.
- A flow detail saved with a state that is not a flow state once "failed unexpectedly" on every claim
  and was set aside only after ``max_attempts`` claims: it is a malformed record, set aside at the
  first claim with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from flowkit.engines.persistence import backend_for
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.persistence.models import FlowDetail, LogBook
from tests.support.boards import board_is_empty
from tests.support.conductors import REPO, Conductors
from tests.support.wait import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MOD = "tests.allowlist_flows"


@pytest.fixture
def persistence_url(postgres_url: str) -> str:
    return postgres_url


def _post_raw(board: JobBoard, postgres_url: str, name: str, path: str, *args: str) -> Job:
    """Post a job whose flow detail names ``path`` as saved by a poster we do not control (no checks)."""
    book = LogBook(name)
    fd = book.add(FlowDetail(name))
    fd.meta["factory"] = {"name": path, "args": list(args), "kwargs": {}}
    with backend_for(postgres_url).get_connection() as conn:
        conn.upgrade()
        conn.save_logbook(book)
    return board.post(name, book=book, flow_detail=fd)


def test_a_shell_reached_through_an_allowed_module_never_runs(
    board: JobBoard,
    board_url: str,
    board_name: str,
    conductors: Conductors,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    markers = {k: tmp_path / f"ran-{k}" for k in ("system", "spaced", "getoutput", "demo", "static", "alias")}
    bad = [
        _post_raw(board, postgres_url, "system", f"{MOD}:os.system", f"touch {markers['system']}"),
        _post_raw(board, postgres_url, "spaced", f" {MOD} :os.system", f"touch {markers['spaced']}"),
        board.post_flow(
            f"{MOD}:subprocess.getoutput", factory_args=[f"touch {markers['getoutput']}"], name="getoutput"
        ),
        board.post_flow(
            "flowkit.demo:subprocess.getoutput", factory_args=[f"touch {markers['demo']}"], name="demo"
        ),
        board.post_flow(f"{MOD}:Builder.shell", factory_args=[f"touch {markers['static']}"], name="static"),
        board.post_flow(f"{MOD}:run_shell", factory_args=[f"touch {markers['alias']}"], name="alias"),
    ]
    # `flowkit jobs post` without --allow posts it (nothing runs there); the conductor must not run it.
    cli_marker = tmp_path / "ran-cli"
    command = [sys.executable, "-m", "flowkit.cli.main", "jobs", "post", f"{MOD}:os.system", "--name", "cli"]
    command += ["--kwargs", f'{{"command": "touch {cli_marker}"}}']
    posted = subprocess.run(
        [*command, "--board", board_url, "--board-name", board_name, "--persistence", postgres_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert posted.returncode == 0, posted.stderr
    ok = tmp_path / "ok"
    good = board.post_flow(f"{MOD}:Builder.create", store={"path": str(ok)}, name="good")
    a = conductors.start("a", board_url, "--board-name", board_name, "--allow", f"{MOD},flowkit.demo")
    wait_until(lambda: good.state is JobState.COMPLETE, 30, "the good job")
    wait_until(lambda: board_is_empty(board), 20, "the other jobs to be set aside")
    assert ok.exists()
    assert [m.name for m in [*markers.values(), cli_marker] if m.exists()] == []
    aside = {j.name: j for j in board.set_aside_jobs()}
    assert sorted(aside) == sorted([j.name for j in bad] + ["cli"])
    assert all(j.attempts == 1 for j in aside.values()), {n: j.attempts for n, j in aside.items()}
    assert "is defined in module" in (aside["system"].last_reason or "")
    assert "no spaces" in (aside["spaced"].last_reason or "")
    log = conductors.log("a")
    assert "failed unexpectedly" not in log and "any importable callable" not in log
    a.terminate()
    assert a.wait(10) == 0
    # Without --allow the conductor says at start what that means.
    b = conductors.start("b", board_url, "--board-name", board_name)
    assert "any importable callable" in conductors.log("b")
    b.terminate()
    assert b.wait(10) == 0


def _corrupt(postgres_url: str, job: Job, column: str, value: str) -> None:
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f"UPDATE flowkit_flowdetails SET {column} = %s WHERE uuid = %s", (value, job.flow_uuid))
        assert cur.rowcount == 1
    conn.close()


def test_a_malformed_saved_flow_detail_is_set_aside_at_the_first_claim(
    board: JobBoard,
    board_url: str,
    board_name: str,
    conductors: Conductors,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    bogus = board.post_flow(f"{MOD}:make", store={"path": str(tmp_path / "bogus")}, name="bogus-state")
    not_json = board.post_flow(f"{MOD}:make", store={"path": str(tmp_path / "not-json")}, name="bad-meta")
    _corrupt(postgres_url, bogus, "state", "BOGUS")
    _corrupt(postgres_url, not_json, "meta", "{not json")
    good = board.post_flow(f"{MOD}:make", store={"path": str(tmp_path / "ok")}, name="good")
    a = conductors.start("a", board_url, "--board-name", board_name, "--allow", MOD)
    wait_until(lambda: good.state is JobState.COMPLETE, 30, "the good job")
    wait_until(lambda: board_is_empty(board), 30, "the malformed jobs to be set aside")
    aside = {j.name: j for j in board.set_aside_jobs()}
    assert sorted(aside) == ["bad-meta", "bogus-state"]
    assert {n: j.attempts for n, j in aside.items()} == {"bad-meta": 1, "bogus-state": 1}
    assert "'BOGUS'" in (aside["bogus-state"].last_reason or "")
    assert bogus.flow_uuid in (aside["bogus-state"].last_reason or "")
    assert "corrupt" in (aside["bad-meta"].last_reason or "")
    assert not (tmp_path / "bogus").exists() and not (tmp_path / "not-json").exists()
    assert "failed unexpectedly" not in conductors.log("a") and "Traceback" not in conductors.log("a")
    a.terminate()
    assert a.wait(10) == 0
