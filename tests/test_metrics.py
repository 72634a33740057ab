"""Metrics and health over HTTP from the daemons: ``flowkit-conductor --metrics-port`` (jobs, flows and
atoms by final state, atom durations by task) and ``flowkit-worker --metrics-port`` (requests in
flight); and that a conductor without the flag loads no metrics code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowkit import LinearFlow
from flowkit.jobboard import JobBoard, JobState
from tests import worker_tasks as wt
from tests.support.background import Background
from tests.support.conductors import Conductors
from tests.support.serve import REPO, free_port
from tests.support.wait import wait_until
from tests.support.worker_processes import worker_exchange, worker_spawner
from tests.test_workers_rabbitmq import load

pytestmark = pytest.mark.timeout(120)

exchange = pytest.fixture(worker_exchange, name="exchange")
spawn = pytest.fixture(worker_spawner, name="spawn")


def _value(text: str, sample: str) -> float:
    """The value of one sample line (``name{labels}``) in a Prometheus text page; 0 when absent."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_conductor_serves_its_metrics_and_health(
    tmp_path: Path, persistence_url: str, conductors: Conductors
) -> None:
    board_url = f"sqlite:///{tmp_path}/board.db"
    port = free_port()
    conductors.start("c1", board_url, "--metrics-port", str(port), "--heartbeat", "0.3")
    from flowkit.jobboard import backends as boards

    with boards.fetch("flowkit", board_url, persistence=persistence_url) as board:
        gate = tmp_path / "gate"
        gate.touch()
        failing = board.post_flow("tests.ops_flows:gated", store={"gate": str(gate)})
        fine = board.post_flow("tests.ops_flows:napping", store={"seconds": 0.05})
        for job in (failing, fine):
            wait_until(lambda j=job: board.state_of(j) is JobState.COMPLETE, 30, f"job {job.name} consumed")
        _check_board(board)

    url = f"http://127.0.0.1:{port}"
    text = httpx.get(f"{url}/metrics").text
    assert _value(text, "flowkit_jobs_claimed_total") == 2
    assert _value(text, "flowkit_jobs_consumed_total") == 2
    assert _value(text, "flowkit_jobs_set_aside_total") == 0
    assert _value(text, "flowkit_jobs_running") == 0
    assert _value(text, 'flowkit_flows_finished_total{state="REVERTED"}') == 1
    assert _value(text, 'flowkit_flows_finished_total{state="SUCCESS"}') == 1
    assert _value(text, 'flowkit_atoms_finished_total{state="SUCCESS"}') == 2
    assert _value(text, 'flowkit_atoms_finished_total{state="REVERTED"}') == 2
    assert _value(text, 'flowkit_atom_duration_seconds_count{intention="EXECUTE",task="nap-0"}') == 1
    assert _value(text, 'flowkit_atom_duration_seconds_sum{intention="EXECUTE",task="nap-0"}') >= 0.05
    health = httpx.get(f"{url}/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True, "board": "ok", "persistence": "ok"}


def _check_board(board: JobBoard) -> None:
    (member,) = board.fleet()
    assert member.name == "c1" and member.status() == "alive"


def test_a_conductor_without_the_flag_imports_no_metrics_code() -> None:
    code = (
        "import sys, conductor.cli, conductor.loop; "
        "heavy = ('prometheus_client', 'flowkit.serve', 'fastapi'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_worker_serves_requests_in_flight(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    port = free_port()
    spawn(threads=2, extra=("--metrics-port", str(port))).wait_ready()
    url = f"http://127.0.0.1:{port}"
    assert _value(httpx.get(f"{url}/metrics").text, "flowkit_worker_requests_in_flight") == 0
    assert httpx.get(f"{url}/healthz").json() == {"ok": True, "broker": "ok"}
    engine = load(
        LinearFlow("slow").add(wt.Sleepy("nap")),
        rabbitmq_url,
        exchange,
        store={"marker_dir": str(tmp_path), "seconds": 3.0},
    )
    run = Background(engine.run, "engine")
    wait_until(lambda: (tmp_path / "started-nap").exists(), 20, "the task to start on the worker")
    assert _value(httpx.get(f"{url}/metrics").text, "flowkit_worker_requests_in_flight") == 1
    assert _value(httpx.get(f"{url}/metrics").text, 'flowkit_worker_threads{kind="total"}') == 2
    run.wait(20)
    assert not run.errors, run.errors
    wait_until(
        lambda: _value(httpx.get(f"{url}/metrics").text, "flowkit_worker_requests_in_flight") == 0,
        10,
        "the request answered",
    )
