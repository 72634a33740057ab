"""Workers log one line per atom call under ``flowkit.worker.atoms``, with the job and the flow it belongs
to (carried by the request), so grepping a job's uuid across the workers' logs shows its atoms.

Real ``flowkit-worker`` processes on the shared RabbitMQ; the job runs under a real conductor with the
worker-based engine, on the embedded SQLite board and persistence.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conductor import Conductor
from flowkit import LinearFlow, engines
from flowkit.jobboard import JobState
from flowkit.jobboard import backends as boards
from flowkit.workers import protocol as p
from tests import worker_tasks as wt
from tests.support.conductors import running
from tests.support.wait import wait_until
from tests.support.worker_processes import TOPIC, worker_exchange, worker_spawner

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

exchange = pytest.fixture(worker_exchange, name="exchange")
spawn = pytest.fixture(worker_spawner, name="spawn")


def _atom_lines(text: str) -> list[str]:
    return [
        line.split("flowkit.worker.atoms: ", 1)[1]
        for line in text.splitlines()
        if "flowkit.worker.atoms: " in line
    ]


def test_a_conductors_job_is_logged_by_the_worker_with_its_job_and_flow(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    worker = spawn(extra=("--log-level", "info")).wait_ready()
    db = f"sqlite:///{tmp_path}/flows.db"
    board = boards.fetch("flowkit", db, persistence=db)
    board.connect()
    job = board.post_flow(
        "tests.worker_tasks:echo_then_explode", store={"value": 7, "marker_dir": str(tmp_path)}
    )
    options = {"transport": rabbitmq_url, "exchange": exchange, "topics": [TOPIC], "transition_timeout": 10.0}
    conductor = Conductor("c1", board, db, engine="worker-based", engine_options=options, wait_timeout=0.1)
    with running(conductor):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 60, "the job consumed")
    prefix = f"job {job.uuid} flow {job.flow_uuid} atom"
    wait_until(lambda: len(_atom_lines(worker.text())) >= 3, 10, "the worker's three atom lines")
    lines = _atom_lines(worker.text())
    ran = r" in \d+\.\d{3}s \(worker [^)]+\)$"
    assert any(re.fullmatch(f"{re.escape(prefix)} 'echo' execute ok{ran}", line) for line in lines), lines
    assert any(
        re.fullmatch(f"{re.escape(prefix)} 'explode' execute failed: ValueError: boom in explode{ran}", line)
        for line in lines
    ), lines
    assert any(re.fullmatch(f"{re.escape(prefix)} 'echo' revert ok{ran}", line) for line in lines), lines


def test_an_engine_without_a_job_sends_its_flow_and_an_old_request_is_still_served(
    rabbitmq_url: str, exchange: str, spawn: Any
) -> None:
    worker = spawn(extra=("--log-level", "info")).wait_ready()
    engine = engines.load(
        LinearFlow("alone").add(wt.Echo(name="echo")),
        engine="worker-based",
        transport=rabbitmq_url,
        exchange=exchange,
        topics=[TOPIC],
        store={"value": 1},
    )
    engine.run()
    flow = engine.storage.flow_uuid
    wait_until(lambda: _atom_lines(worker.text()), 10, "the worker's atom line")
    assert re.fullmatch(
        rf"job - flow {flow} atom 'echo' execute ok in \d+\.\d{{3}}s \(worker [^)]+\)",
        _atom_lines(worker.text())[0],
    )
    # the ids are optional: a request without them (an older engine) is valid, one with a bad one is not
    bare = {
        "protocol": 1,
        "type": "request",
        "uuid": "u",
        "task": "t",
        "atom": "a",
        "action": "execute",
        "arguments": {},
    }
    assert p.validate(dict(bare)) == bare
    with pytest.raises(Exception, match="field 'job' must be a non-empty str"):
        p.validate({**bare, "job": ""})
