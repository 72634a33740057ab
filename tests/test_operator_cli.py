"""The operator verbs from a shell: ``flowkit jobs list -o json|requeue|trash``, ``flowkit flows
retry|resume``, ``flowkit fleet``, by uuid prefix; and a wrong address answered in one line, quickly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conductor import Conductor
from flowkit.cli.main import cli
from flowkit.jobboard import JobBoard, JobState
from flowkit.jobboard import backends as boards
from flowkit.jobboard.fleet import Member
from flowkit.persistence.shared import backend_for
from flowkit.states import FlowState
from tests.support.conductors import running
from tests.support.serve import REPO
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    db = f"sqlite:///{tmp_path}/flows.db"  # the embedded default: one file for the flows and the board
    return {"FLOWKIT_BOARD": db, "FLOWKIT_PERSISTENCE": db}


@pytest.fixture
def board(env: dict[str, str]) -> JobBoard:
    made = boards.fetch("flowkit", env["FLOWKIT_BOARD"], persistence=env["FLOWKIT_PERSISTENCE"])
    made.connect()
    return made


def _run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_jobs_list_as_json_with_history_and_filters(env: dict[str, str], board: JobBoard) -> None:
    done, waiting = board.post("done"), board.post("waiting")
    board.claim(done, "c1")
    board.consume(done, "c1")
    on_board = json.loads(_run(env, "jobs", "list", "-o", "json"))
    assert [(j["uuid"], j["state"]) for j in on_board] == [(waiting.uuid, "UNCLAIMED")]
    everything = {j["uuid"]: j for j in json.loads(_run(env, "jobs", "list", "--history", "-o", "json"))}
    assert everything[done.uuid]["state"] == "COMPLETE" and everything[done.uuid]["owner"] == "c1"
    mine = json.loads(_run(env, "jobs", "list", "--state", "COMPLETE", "--owner", "c1", "-o", "json"))
    assert [j["uuid"] for j in mine] == [done.uuid]
    assert "COMPLETE" in _run(env, "jobs", "list", "--history")


def test_requeue_and_trash_by_prefix(env: dict[str, str], board: JobBoard) -> None:
    aside, waiting = board.post("aside"), board.post("waiting")
    board.claim(aside, "c1")
    board.set_aside(aside, "c1", "poison")
    assert f"requeued job 'aside' {aside.uuid}" in _run(env, "jobs", "requeue", aside.uuid[:8])
    assert board.get_job(aside.uuid).state is JobState.UNCLAIMED
    assert f"trashed job 'waiting' {waiting.uuid}" in _run(env, "jobs", "trash", waiting.uuid[:8])
    assert board.get_job(waiting.uuid).state is JobState.TRASHED
    again = _run(env, "jobs", "requeue", aside.uuid[:8], code=1)
    assert "UNCLAIMED" in again and "Traceback" not in again
    assert "no job 'ffffffff'" in _run(env, "jobs", "trash", "ffffffff", code=1)
    assert "SET_ASIDE" not in _run(env, "jobs", "show", aside.uuid[:8])


def test_flows_retry_and_resume(env: dict[str, str], board: JobBoard, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    job = board.post_flow("tests.ops_flows:gated", store={"gate": str(gate)})
    flow = job.flow_uuid or ""
    with running(Conductor("c1", board, env["FLOWKIT_PERSISTENCE"], wait_timeout=0.1)):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the job consumed")
        assert "is REVERTED, not SUSPENDED" in _run(env, "flows", "resume", flow[:8], code=1)
        gate.unlink()
        assert f"posted for flow {flow}" in _run(env, "flows", "retry", flow[:8])

        def state() -> FlowState:
            with backend_for(env["FLOWKIT_PERSISTENCE"]).get_connection() as conn:
                return conn.get_flow_detail(flow).state

        wait_until(lambda: state() is FlowState.SUCCESS, 30, "the retried flow")


def test_fleet_as_table_and_json(env: dict[str, str], board: JobBoard) -> None:
    assert "no conductor" in _run(env, "fleet")
    board.announce(Member("c1", running=("0123456789abcdef",)))
    table = _run(env, "fleet")
    assert "c1" in table and "alive" in table and "01234567" in table
    (member,) = json.loads(_run(env, "fleet", "-o", "json"))
    assert member["name"] == "c1" and member["status"] == "alive" and member["pid"] == os.getpid()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("jobs", "list", "--board", "zookeeper://127.0.0.1:9/nothing"), "zookeeper://127.0.0.1:9/nothing"),
        (("jobs", "list", "--board", "postgresql://postgres@127.0.0.1:9/nothing"), "127.0.0.1:9/nothing"),
        (("fleet", "--board", "postgresql://postgres@127.0.0.1:9/nothing"), "127.0.0.1:9/nothing"),
    ],
)
def test_a_wrong_address_is_one_line_within_seconds(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FLOWKIT_CONNECT_TIMEOUT": "2"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flowkit", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    took = time.monotonic() - started
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and lines[0].startswith("Error: "), done.stderr
    assert took < 6, took


@pytest.mark.parametrize(
    ("module", "prog"),
    [("flowkit", "flowkit"), ("conductor", "flowkit-conductor"), ("flowkit.workers.cli", "flowkit-worker")],
)
def test_every_command_says_its_version(module: str, prog: str) -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", module, "--version"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{prog}, version {version('flowkit')}"


@pytest.mark.parametrize("module", ["conductor", "flowkit.workers.cli"])
def test_log_level_is_one_style_everywhere(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True)
    assert "--log-level [debug|info|warning|error]" in done.stdout
    serve = CliRunner().invoke(cli, ["serve", "--help"])
    assert "--log-level [debug|info|warning|error]" in serve.output


def test_conductors_log_each_atom_with_its_job_and_flow(
    board: JobBoard, env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    job = board.post_flow("tests.ops_flows:gated", store={"gate": str(gate)})
    conductor = Conductor("c1", board, env["FLOWKIT_PERSISTENCE"], wait_timeout=0.1)
    with caplog.at_level("INFO", logger="flowkit.conductor.atoms"), running(conductor):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the job consumed")
    lines = [r.getMessage() for r in caplog.records if r.name == "flowkit.conductor.atoms"]
    prefix = f"job {job.uuid} flow {job.flow_uuid} atom"
    assert f"{prefix} 'prepare' SUCCESS" in lines
    assert f"{prefix} 'prepare' REVERTED" in lines
    assert any(line.startswith(f"{prefix} 'gate' FAILURE: ") and "is closed" in line for line in lines), lines
