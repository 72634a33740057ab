"""The programs in ``examples/`` run as a user runs them (``python examples/X.py``), and say what they should.

Each runs in a subprocess from the checkout root; the checks are on what the program printed, so a
change that breaks an example's behaviour (not only one that makes it crash) fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import HOST, ZOOKEEPER_PORT, probe_zookeeper, require_service

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, timeout: float = 90) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def test_every_example_is_listed_in_the_readme_and_tested_here() -> None:
    readme = (ROOT / "README.md").read_text()
    here = Path(__file__).read_text()
    for program in sorted(EXAMPLES.glob("*.py")):
        assert f"examples/{program.name}" in readme, f"README.md does not list {program.name}"
        assert f'"{program.name}"' in here, f"tests/test_examples.py does not run {program.name}"


def test_vm_boot_resumes_after_the_crash_without_repeating_finished_steps(tmp_path: Path) -> None:
    out = run_example("vm_boot_resume.py", "--db", f"sqlite:///{tmp_path / 'flows.sqlite'}")
    first, second = out.index("run 1, in a child process:"), out.index("run 2, here, from the database:")
    before, after = out[first:second], out[second:]
    assert "  ** the process dies here **" in before
    assert "child killed by signal 9; the database says:" in before
    states = dict(
        line.split() for line in before[before.index("child killed by signal 9; the database says:") + 1 :]
    )
    assert states == {
        "allocate-ip": "SUCCESS",
        "create-volume": "SUCCESS",
        "start-vm": "RUNNING",
        "announce": "PENDING",
    }
    # Finished steps are not run again; the interrupted one is, with the same idempotency key.
    assert not any("allocate-ip" in line or "create-volume" in line for line in after)
    started = [line for line in out if line.startswith("  start-vm:")]
    assert len(started) == 2 and started[0] == started[1]
    assert after[-2:] == ["  announce: vm-web-1 is up at 10.0.0.7", "flow SUCCESS: vm_id=vm-web-1"]


def test_vm_boot_keeps_its_state_in_sqlite_by_default() -> None:
    out = run_example("vm_boot_resume.py")
    assert out[-1] == "flow SUCCESS: vm_id=vm-web-1"


def test_billing_retries_the_charge_then_reverts_everything_when_it_gives_up() -> None:
    out = run_example("billing_retry.py")
    ok, failing = (
        out[: out.index("== the gateway never answers ==")],
        out[out.index("== the gateway never answers ==") :],
    )
    assert [line for line in ok if "attempt" in line and "authorize" in line] == [
        f"  attempt {n}: authorize 19.99 EUR on 4242" for n in (1, 2, 3)
    ]
    assert ok.count("open invoice for acme: 19.99 EUR") == 1  # outside the retried subflow
    assert ok[-2:] == ["receipt to acme: inv-acme paid by ch_003", "paid after 3 attempt(s)"]
    assert "void invoice inv-acme" not in ok
    assert failing[-3:] == [
        "  release authorization auth-3",
        "void invoice inv-acme",
        "gave up, everything reverted: gateway timed out charging 4242 (call 3)",
    ]


def test_parallel_sum_is_right_and_its_chunks_overlap() -> None:
    out = run_example("parallel_sum.py", "--n", "1000", "--chunks", "4")
    # four chunks of 250 numbers each: 1..250, 251..500, ...
    parts = [sum(i * i for i in range(1 + 250 * k, 251 + 250 * k)) for k in range(4)]
    assert out[:4] == [f"part-{k} = {part}" for k, part in enumerate(parts)]
    assert out[4] == f"total = {sum(parts)} (correct)" == "total = 333833500 (correct)"
    most = int(out[5].split()[2])
    assert 2 <= most <= 4, out[5]


def _orders_lines(out: list[str]) -> None:
    assert out[:4] == ["posted order-1", "posted order-2", "posted order-3", "3 jobs on the board"]
    work = out[4:-1]
    # One job at a time ("blocking"): each order's two steps are printed together. A ZooKeeper
    # board does not promise to hand jobs out in the order they were posted, so only that is checked.
    pairs = {work[k].split(":")[0]: (work[k], work[k + 1]) for k in range(0, len(work), 2)}
    assert len(work) == 6 and pairs == {
        "  order-1": ("  order-1: picking book", "  order-1: shipped parcel-order-1"),
        "  order-2": ("  order-2: picking lamp, bulb", "  order-2: shipped parcel-order-2"),
        "  order-3": ("  order-3: picking kettle", "  order-3: shipped parcel-order-3"),
    }
    assert out[-1] == "0 jobs left on the board"


def test_jobs_are_posted_then_run_and_consumed_by_a_conductor_on_sqlite() -> None:
    _orders_lines(run_example("jobs_conductor.py"))


@pytest.mark.zookeeper
def test_jobs_conductor_runs_on_zookeeper_too() -> None:
    probe = probe_zookeeper(HOST, ZOOKEEPER_PORT)
    require_service("ZooKeeper", probe.ok, probe.reason)
    _orders_lines(run_example("jobs_conductor.py", "--zookeeper", "--hosts", f"{HOST}:{ZOOKEEPER_PORT}"))
