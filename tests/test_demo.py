"""The demo (``python -m flowkit.demo``): run 1 is reverted, run 2 succeeds, exit status 0."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

from flowkit import demo
from flowkit.states import AtomState, FlowState

ATOMS = [f"{kind}-server-{n}" for n in (1, 2, 3) for kind in ("create", "wait")] + ["configure-cluster"]


def test_demo_main_behaves_as_designed() -> None:
    out = io.StringIO()
    started = time.monotonic()
    assert demo.main(["--pace", "0.2"], out=out) == 0
    assert time.monotonic() - started < 5
    text = out.getvalue()
    first, second = text.split("== run 2")
    for atom in ATOMS:
        assert re.search(rf"task\s+'{atom}'\s+REVERTING -> REVERTED", first), atom
        assert re.search(rf"^  {atom}\s+REVERTED\s", first, re.M), atom
        assert re.search(rf"^  {atom}\s+SUCCESS\s", second, re.M), atom
    assert "RUNNING -> FAILURE  flowkit.demo.QuotaExceeded: quota exceeded" in first
    assert "flow 'create-cluster' ended REVERTED" in first
    assert "cloud: servers left: none" in first
    assert "flow 'create-cluster' ended SUCCESS" in second
    assert "demo: run 1 was reverted cleanly, run 2 succeeded." in second


def test_run_demo_reverts_servers_in_reverse_creation_order() -> None:
    run = demo.run_demo(io.StringIO(), fail=True, pace=0.3)
    assert run.state is FlowState.REVERTED
    assert isinstance(run.error, demo.QuotaExceeded)
    assert set(run.atom_states.values()) == {AtomState.REVERTED}
    assert run.deleted == ["srv-demo-3", "srv-demo-2", "srv-demo-1"]
    assert run.servers_left == []
    assert set(run.timings) == set(ATOMS) and {f"create-server-{n}" for n in (1, 2, 3)} <= set(
        run.revert_timings
    )


def test_run_demo_succeeds_without_the_fault() -> None:
    run = demo.run_demo(io.StringIO(), fail=False, pace=0)
    assert run.state is FlowState.SUCCESS and run.error is None
    assert run.servers_left == ["srv-demo-1", "srv-demo-2", "srv-demo-3"]
    assert demo.CLOUD.servers == dict.fromkeys(run.servers_left, "ACTIVE")


def test_check_reports_what_went_wrong() -> None:
    ok = demo.run_demo(io.StringIO(), fail=False, pace=0)
    problems = demo.check(ok, ok)
    assert "run 1 should end REVERTED, ended SUCCESS" in problems
    assert any(p.startswith("run 1 left atoms not reverted") for p in problems)


def test_python_dash_m_flowkit_demo_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flowkit.demo", "--pace", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REVERTING -> REVERTED" in proc.stdout
    assert "ended SUCCESS" in proc.stdout
    assert proc.stderr == ""
