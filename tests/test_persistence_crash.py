"""Kill a real process with SIGKILL at several points of a persisted flow, then resume it here.

The child runs ``tests/crash_flows.py`` on a SQLite file; the test waits until the child is exactly
where it should be (a marker file), kills it, checks what the database says, then rebuilds the flow
from the saved factory (``engines.load_from_detail``) and runs it to its end in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit import engines
from flowkit.persistence import backends
from flowkit.persistence.backends import Backend
from flowkit.states import FlowState
from tests.crash_flows import NAMES, Boom
from tests.support.persistence import lines, saved_flow, saved_states

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "armed").write_text("")
    return tmp_path


@pytest.fixture
def backend(workdir: Path) -> Iterator[Backend]:
    b = backends.fetch(f"sqlite:///{workdir}/flows.db")
    with b.get_connection() as conn:
        conn.upgrade()
    yield b
    b.close()


def _crash(backend: Backend, workdir: Path, marker: str, *options: str) -> str:
    """Start the child, wait for ``marker`` to appear, SIGKILL it; return the flow detail's uuid."""
    flow_uuid = str(uuid.uuid4())
    cmd = [sys.executable, "-m", "tests.crash_flows", backend.url, str(workdir), flow_uuid, *options]
    child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (workdir / marker).exists():
            if child.poll() is not None:
                _, err = child.communicate()
                raise AssertionError(
                    f"child exited {child.returncode} before {marker}: {err.decode()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"child never reached {marker}")
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    (workdir / "armed").unlink()
    return flow_uuid


def _runs(workdir: Path, what: str) -> dict[str, int]:
    return {n: lines(workdir / f"{n}.{what}") for n in NAMES}


def test_killed_mid_execute_resumes_without_running_finished_atoms_again(
    backend: Backend, workdir: Path
) -> None:
    flow_uuid = _crash(backend, workdir, "b.hang", "--hang", "b")
    assert saved_states(backend, flow_uuid) == {
        "a": "SUCCESS",
        "b": "RUNNING",
        "c": "PENDING",
        "d": "PENDING",
    }
    fd = saved_flow(backend, flow_uuid)
    assert fd.state is FlowState.RUNNING
    b_uuid = fd.find_by_name("b").uuid  # type: ignore[union-attr]

    engine = engines.load_from_detail(flow_uuid, backend=backend)
    engine.run()

    assert _runs(workdir, "execute") == {"a": 1, "b": 2, "c": 1, "d": 1}  # b: at least once
    assert saved_states(backend, flow_uuid) == dict.fromkeys(NAMES, "SUCCESS")
    fd = saved_flow(backend, flow_uuid)
    assert fd.state is FlowState.SUCCESS
    b = fd.find_by_name("b")
    assert b is not None and b.uuid == b_uuid and b.attempts == 2  # same idempotency key, two starts
    assert engine.storage.fetch("a_out") == {"step": "a"}  # a's result came from the database


def test_killed_between_atoms_resumes_with_the_next_atom(backend: Backend, workdir: Path) -> None:
    flow_uuid = _crash(backend, workdir, "between.hang", "--between", "b")
    # b's SUCCESS is saved with c's RUNNING (one commit: the serial engine's pairing), and b's listeners
    # are told after that: c is RUNNING, not called yet
    assert saved_states(backend, flow_uuid) == {
        "a": "SUCCESS",
        "b": "SUCCESS",
        "c": "RUNNING",
        "d": "PENDING",
    }

    engines.load_from_detail(flow_uuid, backend=backend).run()

    assert _runs(workdir, "execute") == dict.fromkeys(NAMES, 1)
    assert saved_states(backend, flow_uuid) == dict.fromkeys(NAMES, "SUCCESS")


def test_killed_mid_revert_keeps_reverting(backend: Backend, workdir: Path) -> None:
    flow_uuid = _crash(backend, workdir, "b.hang", "--fail", "d", "--hang-revert", "b")
    assert saved_states(backend, flow_uuid) == {
        "a": "SUCCESS",
        "b": "REVERTING",
        "c": "REVERTED",
        "d": "REVERTED",
    }
    fd = saved_flow(backend, flow_uuid)
    assert fd.state is FlowState.REVERTING and list(fd.failures) == ["d"]

    engine = engines.load_from_detail(flow_uuid, backend=backend)
    with pytest.raises(Boom, match="d failed on purpose"):  # the saved failure, re-raised as itself
        engine.run()

    assert _runs(workdir, "execute") == dict.fromkeys(NAMES, 1)  # nothing ran forward again
    assert _runs(workdir, "revert") == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert saved_states(backend, flow_uuid) == dict.fromkeys(NAMES, "REVERTED")
    assert saved_flow(backend, flow_uuid).state is FlowState.REVERTED
