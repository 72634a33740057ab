"""``flowkit jobs post|list|show`` on an SQLite board with SQLite persistence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli.main import cli
from flowkit.jobboard import backends as boards


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "FLOWKIT_BOARD": f"sqlite:///{tmp_path}/board.db",
        "FLOWKIT_PERSISTENCE": f"sqlite:///{tmp_path}/flows.db",
    }


def _run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, ["jobs", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_post_list_show(env: dict[str, str], tmp_path: Path) -> None:
    store = json.dumps({"job_key": "k", "trace_dir": str(tmp_path)})
    out = _run(env, "post", "tests.job_flows:steps", "--store", store, "--kwargs", '{"n": 2}', "--name", "k")
    uuid = re.search(r"posted job 'k' ([0-9a-f-]{36})", out)
    assert uuid is not None, out
    listing = _run(env, "list")
    assert "UNCLAIMED" in listing and uuid.group(1) in listing and "AGE" in listing
    with boards.fetch("flowkit", env["FLOWKIT_BOARD"]) as board:
        job = board.get_job(uuid.group(1))
        board.claim(job, "conductor-x")
        assert "conductor-x" in _run(env, "list")
        board.set_aside(job, "conductor-x", "not today")
    assert _run(env, "list") == "no jobs\n"
    assert "not today" in _run(env, "list", "--all")
    shown = _run(env, "show", uuid.group(1))
    assert "SET_ASIDE" in shown and "tests.job_flows:steps" in shown
    assert "flow 'k' (tests.job_flows:steps): PENDING" in shown and "no atom has started yet" in shown


def test_mistakes_are_reported(env: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["jobs", "post", "x:y", "--store", "[1]"], env=env)
    assert result.exit_code == 2 and "must be a JSON object" in result.output
    result = runner.invoke(cli, ["jobs", "post", "x:y", "--store", "{"], env=env)
    assert result.exit_code == 2 and "not JSON" in result.output
    result = runner.invoke(cli, ["jobs", "show", "nope"], env=env)
    assert result.exit_code == 1 and "no job 'nope'" in result.output
    result = runner.invoke(cli, ["jobs", "list"], env={**env, "FLOWKIT_BOARD": "redis://x"})
    assert result.exit_code == 1 and "no backend for 'redis://x'" in result.output


def test_show_lists_the_atoms_of_a_flow_that_ran(env: dict[str, str], tmp_path: Path) -> None:
    from flowkit.engines.persistence import load_from_detail

    store = json.dumps({"job_key": "k", "trace_dir": str(tmp_path)})
    out = _run(env, "post", "tests.job_flows:failing", "--store", store, "--name", "f")
    uuid = out.split()[-1]
    with boards.fetch("flowkit", env["FLOWKIT_BOARD"], persistence=env["FLOWKIT_PERSISTENCE"]) as board:
        job = board.get_job(uuid)
        engine = load_from_detail(job.book.find(job.flow_uuid), backend=env["FLOWKIT_PERSISTENCE"])
        with pytest.raises(ValueError, match="boom"):
            engine.run()
    shown = _run(env, "show", uuid)
    assert re.search(r"step-0\s+REVERTED", shown) and re.search(r"boom\s+REVERTED\s+.*boom", shown), shown
