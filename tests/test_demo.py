"""The demo (``python -m flowkit.demo``): run 1 is reverted; run 2 is killed, resumed and succeeds;
run 3's conductor is killed and another conductor finishes the job."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

from flowkit import demo
from flowkit.states import AtomState, FlowState

ATOMS = [f"{kind}-server-{n}" for n in (1, 2, 3) for kind in ("create", "wait")] + ["configure-cluster"]


def test_demo_main_behaves_as_designed(tmp_path) -> None:
    out = io.StringIO()
    assert demo.main(["--pace", "0.3", "--workdir", str(tmp_path)], out=out) == 0, out.getvalue()
    text = out.getvalue()
    first, second = text.split("== run 2")
    for atom in ATOMS:
        assert re.search(rf"task\s+'{atom}'\s+REVERTING -> REVERTED", first), atom
        assert re.search(rf"^  {atom}\s+REVERTED\s", first, re.M), atom
        assert re.search(rf"^  {atom}\s+SUCCESS\s", second, re.M), atom
    assert "RUNNING -> FAILURE  flowkit.demo.flow.QuotaExceeded: quota exceeded" in first
    assert "flow 'create-cluster' ended REVERTED" in first
    assert "cloud: servers left: none" in first
    assert "killed with SIGKILL" in second
    assert "flow 'create-cluster' ended SUCCESS" in second
    assert (tmp_path / "flowkit.sqlite").exists()
    third, fourth = text.split("== run 3")[1].split("== run 4")
    assert re.search(r"conductor-a claimed it; killed it with SIGKILL after \d+ atoms succeeded", third)
    assert "conductor-b claimed it when the lease ran out" in third
    assert "job COMPLETE, flow SUCCESS" in third
    assert "parked: job WAITING until the cool-down ends, owner none" in fourth
    assert "ran job 'hello': COMPLETE, while 'approved-cluster' stayed WAITING" in fourth
    late = re.search(r"the cool-down ended \((\d+\.\d+)s after its time\)", fourth)
    assert late is not None and float(late.group(1)) <= 1.0, fourth
    assert "waits for its approval, parked again: job WAITING" in fourth
    assert "job COMPLETE, flow SUCCESS: cluster demo opened, approved by the demo" in fourth


def test_run_demo_reverts_servers_in_reverse_creation_order(tmp_path) -> None:
    run = demo.run_demo(io.StringIO(), fail=True, pace=0.3, workdir=str(tmp_path))
    assert run.state is FlowState.REVERTED
    assert isinstance(run.error, demo.QuotaExceeded)
    assert set(run.atom_states.values()) == {AtomState.REVERTED}
    assert run.deleted == ["srv-demo-3", "srv-demo-2", "srv-demo-1"]
    assert run.servers_left == []


def test_crash_and_resume_skips_what_succeeded_and_creates_each_server_once(tmp_path) -> None:
    d = demo.Demo(tmp_path, pace=0.3)
    saved, resumed = demo.crash_and_resume(io.StringIO(), d)
    succeeded_before = {n for n, s in saved.items() if s == "SUCCESS"}
    assert succeeded_before, saved  # the kill came after some progress...
    assert saved["configure-cluster"] != "SUCCESS"  # ...and before the end
    assert resumed.state is FlowState.SUCCESS
    assert not succeeded_before & set(resumed.timings)  # nothing that had succeeded ran again
    assert sorted(resumed.created) == ["srv-demo-1", "srv-demo-2", "srv-demo-3"]
    assert d.cloud.servers == dict.fromkeys(resumed.servers_left, "ACTIVE")


def test_fake_cloud_create_is_idempotent_per_key(tmp_path) -> None:
    cloud = demo.FakeCloud(tmp_path / "cloud.json")
    first = cloud.create("a", "key-1")
    assert cloud.create("a", "key-1") == first
    assert cloud.created == [first]


def test_check_reports_what_went_wrong(tmp_path) -> None:
    ok = demo.run_demo(io.StringIO(), fail=False, pace=0, workdir=str(tmp_path))
    lost = demo.ConductorRun({}, "conductor-a", None, 0.0, "UNCLAIMED", "PENDING", [], [])
    problems = demo.check(ok, ok, saved={"configure-cluster": "SUCCESS"}, third=lost)
    assert "run 1 should end REVERTED, ended SUCCESS" in problems
    assert any(p.startswith("run 1 left atoms not reverted") for p in problems)
    assert "run 2 was killed too late: the flow had already finished" in problems
    assert "run 3 should consume the job after SUCCESS, got UNCLAIMED/PENDING" in problems
    assert "run 3: another conductor should take the job over, got None" in problems
    stuck = demo.WaitRun(parked_on_sleep=False, owner_while_parked="conductor-c", late=None)
    problems = demo.check(ok, ok, saved={}, fourth=stuck)
    assert "run 4 should park the job during its Sleep (owner then: conductor-c)" in problems
    assert "run 4: the conductor should run another job while the first one is parked" in problems
    assert "run 4: the job should wake within 1s of its time, woke None s late" in problems
    assert "run 4 should end COMPLETE/SUCCESS, got ?/?" in problems


def test_python_dash_m_flowkit_demo_exits_0(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "flowkit.demo", "--pace", "0.3", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REVERTING -> REVERTED" in proc.stdout
    assert "killed with SIGKILL" in proc.stdout
    assert "ended SUCCESS" in proc.stdout
    assert "approved by the demo" in proc.stdout
    assert proc.stderr == ""


def test_the_cli_runs_the_demo_factory(tmp_path) -> None:
    from click.testing import CliRunner

    from flowkit.cli.main import cli

    store = {"cluster_name": "c1", "cloud": str(tmp_path / "cloud.json"), "pace": 0, "fail_configure": True}
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "flowkit.demo:create_cluster",
            "--engine",
            "parallel",
            "--plain",
            "--store",
            json.dumps(store),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "REVERTED" in result.output
    assert demo.FakeCloud(tmp_path / "cloud.json").servers == {}


def test_workers_serve_the_demo_tasks_by_module() -> None:
    from flowkit.workers.tasks import resolve_tasks

    assert set(resolve_tasks(["flowkit.demo.flow"])) == {
        demo.CreateServer,
        demo.WaitForServer,
        demo.ConfigureCluster,
    }
