"""The fleet: conductors announce themselves on their board; a frozen or killed one is shown gone."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowkit.cli.main import cli
from flowkit.jobboard import JobBoard
from flowkit.jobboard.fleet import Heartbeat, Member, MemberStatus
from tests.support.conductors import Conductors
from tests.support.serve import serving
from tests.support.wait import wait_until
from tests.support.worker_processes import worker_exchange, worker_spawner

pytestmark = pytest.mark.timeout(120)


def _status(board: JobBoard) -> dict[str, MemberStatus]:
    return {m.name: m.status() for m in board.fleet()}


def test_a_heartbeat_lists_the_member_until_it_stops(board: JobBoard) -> None:
    running = ["job-1"]
    beat = Heartbeat(board, lambda: Member("c1", running=tuple(running)), interval=0.2)
    beat.start()
    try:
        (member,) = board.fleet()
        assert member.name == "c1" and member.kind == "conductor" and member.pid == os.getpid()
        assert member.status() is MemberStatus.ALIVE and member.running == ("job-1",)
        running[:] = ["job-1", "job-2"]
        wait_until(lambda: board.fleet()[0].running == ("job-1", "job-2"), 5, "the next heartbeat")
    finally:
        beat.stop()
    assert _status(board) == {"c1": MemberStatus.STOPPED}


def test_a_member_that_missed_its_heartbeats_is_gone(board: JobBoard) -> None:
    stale = replace(Member("old", interval=1.0), heartbeat=time.time() - 10)
    board.announce(stale)
    board.announce(Member("fresh", interval=1.0))
    assert _status(board) == {"fresh": MemberStatus.ALIVE, "old": MemberStatus.GONE}


def test_real_conductors_frozen_or_killed_are_shown_gone(
    board: JobBoard, board_url: str, conductors: Conductors
) -> None:
    args = ("--board-name", board.name, "--heartbeat", "0.3")
    frozen, killed, kept = (conductors.start(n, board_url, *args) for n in ("frozen", "killed", "kept"))
    names = {"frozen", "killed", "kept"}
    wait_until(lambda: set(_status(board)) == names, 20, "three conductors in the fleet")
    assert all(s is MemberStatus.ALIVE for s in _status(board).values())
    hosts = {m.name: (m.host, m.pid) for m in board.fleet()}
    assert hosts["kept"][1] == kept.pid and hosts["frozen"][1] == frozen.pid

    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        killed.kill()
        wait_until(
            lambda: _status(board) == {"frozen": "gone", "killed": "gone", "kept": "alive"},
            20,
            "the frozen and the killed conductor shown gone",
        )
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    kept.send_signal(signal.SIGTERM)
    kept.wait(20)
    assert _status(board)["kept"] is MemberStatus.STOPPED


exchange = pytest.fixture(worker_exchange, name="exchange")
spawn = pytest.fixture(worker_spawner, name="spawn")


def test_workers_on_the_broker_are_listed_by_cli_and_rest(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    worker = spawn(threads=3).wait_ready()
    db = f"sqlite:///{tmp_path}/flows.db"
    env = {"FLOWKIT_BOARD": db, "FLOWKIT_TRANSPORT": rabbitmq_url, "FLOWKIT_EXCHANGE": exchange}
    result = CliRunner().invoke(cli, ["fleet", "-o", "json"], env=env)
    assert result.exit_code == 0, result.output
    (member,) = json.loads(result.output)
    assert member["kind"] == "worker" and member["status"] == "alive"
    assert member["pid"] == worker.pid and member["host"] == socket.gethostname()
    assert time.time() - 60 < member["started"] <= time.time()
    args = ("--persistence", db, "--transport", rabbitmq_url, "--exchange", exchange)
    with serving(tmp_path / "serve.log", *args) as api:
        (listed,) = api.get("/api/v1/fleet").json()
        assert listed["name"] == member["name"] and listed["kind"] == "worker"
