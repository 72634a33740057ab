"""The allow list is closed: a factory must be *defined* in an allowed module, and a path is strict.

``--allow tests.allowlist_flows`` once let ``tests.allowlist_flows:os.system`` through (the module is
allowed, and ``os`` is one of its attributes), so a job could run a shell command. Each case here
would create a marker file if the command ran; the marker must not exist. Posting (``post_flow``,
``post``, ``flowkit jobs post``) applies the same check when the board has an allow list, and then
saves and posts nothing. (The conductor process is tested in ``test_conductor_allowlist.py``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli.main import cli
from flowkit.engines.persistence import backend_for, save_factory_details
from flowkit.exceptions import InvalidFlowError
from flowkit.factory import build_flow, check_allowed, resolve_factory
from flowkit.jobboard import JobBoard
from flowkit.jobboard import backends as boards
from flowkit.persistence.models import FlowDetail, LogBook
from tests import allowlist_flows

MOD = "tests.allowlist_flows"
ALLOW = [MOD, "flowkit.demo"]

SHELLS = [
    f"{MOD}:os.system",
    f" {MOD} :os.system",
    f"{MOD}:subprocess.getoutput",
    f"{MOD}:Builder.shell",
    f"{MOD}:run_shell",
    "flowkit.demo:subprocess.getoutput",
    "flowkit.demo:os.system",
]
"""Paths that reach a shell through an allowed module (called with one argument: the command)."""


@pytest.mark.parametrize("path", SHELLS)
def test_a_shell_reached_through_an_allowed_module_is_refused(path: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(InvalidFlowError, match="factory path"):
        build_flow(path, f"touch {marker}", allow=ALLOW)
    assert not marker.exists()


@pytest.mark.parametrize(
    "path",
    [
        f" {MOD}:make",
        f"{MOD}: make",
        f"{MOD}:make ",
        f"{MOD}:make\n",
        f"{MOD}:make\x00",
        f"{MOD}..x:make",
        f"{MOD}:Builder..create",
        f"{MOD}:",
        f":{MOD}",
        f"{MOD}:make:make",
        f"{MOD}:make.__globals__",
        f"{MOD}:Builder.__class__",
        f"{MOD}:make()",
        "tests/allowlist_flows:make",
    ],
)
def test_paths_are_strict_with_or_without_an_allow_list(path: str) -> None:
    for allow in (ALLOW, None):
        with pytest.raises(InvalidFlowError, match="factory path"):
            resolve_factory(path, allow=allow)
    with pytest.raises(InvalidFlowError, match="factory path"):
        check_allowed(path, ALLOW)


def test_what_an_allowed_module_defines_still_resolves(tmp_path: Path) -> None:
    assert resolve_factory(f"{MOD}:make", allow=[MOD]) is allowlist_flows.make
    assert build_flow(f"{MOD}:Builder.create", "b", allow=[MOD]).name == "b"
    assert build_flow(f"{MOD}:FLOW", allow=[MOD]) is allowlist_flows.FLOW  # a flow object: data
    assert build_flow("flowkit.demo:create_cluster", allow=["flowkit.demo"]).name
    # Defined in a module under the prefix, re-exported by another: allowed; re-exported from outside: not.
    assert build_flow("flowkit:LinearFlow", "x", allow=["flowkit"]).name == "x"
    with pytest.raises(InvalidFlowError, match=r"is defined in module 'flowkit\.patterns\.linear_flow'"):
        resolve_factory("flowkit.demo.flow:LinearFlow", allow=["flowkit.demo"])
    # Without an allow list anything importable resolves (the conductor warns about it at start).
    assert resolve_factory(f"{MOD}:os.system") is allowlist_flows.os.system


# -- posting --------------------------------------------------------------------------------------


@pytest.fixture
def urls(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path}/board.db", f"sqlite:///{tmp_path}/flows.db"


@pytest.fixture
def guarded(urls: tuple[str, str]) -> JobBoard:
    board = boards.fetch("guarded", urls[0], persistence=urls[1], allow=ALLOW)
    board.connect()
    yield board
    board.close()


def _logbooks(persistence: str) -> int:
    with backend_for(persistence).get_connection() as conn:
        conn.upgrade()
        return len(conn.get_logbooks())


@pytest.mark.parametrize("path", SHELLS)
def test_post_flow_under_an_allow_list_refuses_and_saves_nothing(
    path: str, guarded: JobBoard, urls: tuple[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(InvalidFlowError, match="factory path"):
        guarded.post_flow(path, factory_args=[f"touch {marker}"])
    assert not marker.exists()
    assert guarded.job_count() == 0 and _logbooks(urls[1]) == 0


def test_post_under_an_allow_list_checks_the_flow_details_factory(
    guarded: JobBoard, urls: tuple[str, str], tmp_path: Path
) -> None:
    book = LogBook("by-hand")
    fd = book.add(FlowDetail("by-hand"))
    save_factory_details(fd, f"{MOD}:os.system", [f"touch {tmp_path / 'ran'}"])
    for kwargs in ({"book": book}, {"book": book, "flow_detail": fd}, {"flow_detail": fd}):
        with pytest.raises(InvalidFlowError, match="is defined in module"):
            guarded.post("by-hand", **kwargs)
    assert guarded.job_count() == 0
    good = guarded.post_flow(f"{MOD}:make", store={"path": "x"})  # what the module defines: posted
    assert [j.uuid for j in guarded.iterjobs()] == [good.uuid]
    assert _logbooks(urls[1]) == 1


def test_flowkit_jobs_post_allow(urls: tuple[str, str], tmp_path: Path) -> None:
    env = {"FLOWKIT_BOARD": urls[0], "FLOWKIT_PERSISTENCE": urls[1]}
    kwargs = f'{{"command": "touch {tmp_path / "ran"}"}}'
    runner = CliRunner()
    for allow in (["--allow", MOD], ["--allow", f"flowkit.demo,{MOD}"]):
        result = runner.invoke(cli, ["jobs", "post", f"{MOD}:os.system", "--kwargs", kwargs, *allow], env=env)
        assert result.exit_code == 1 and "is defined in module" in result.output, result.output
    result = runner.invoke(
        cli, ["jobs", "post", f"{MOD}:os.system", "--kwargs", kwargs], env={**env, "FLOWKIT_ALLOW": MOD}
    )
    assert result.exit_code == 1 and "is defined in module" in result.output, result.output
    result = runner.invoke(cli, ["jobs", "post", f" {MOD}:make"], env=env)  # strict even without --allow
    assert result.exit_code == 1 and "no spaces" in result.output, result.output
    assert not (tmp_path / "ran").exists()
    with boards.fetch("flowkit", urls[0]) as board:
        assert board.job_count() == 0
    assert _logbooks(urls[1]) == 0
    result = runner.invoke(cli, ["jobs", "post", f"{MOD}:make", "--allow", MOD], env=env)
    assert result.exit_code == 0 and "posted job 'make'" in result.output, result.output
