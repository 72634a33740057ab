"""The fleet: conductors announce themselves on their board; a frozen or killed one is shown gone."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

import pytest

from flowkit.jobboard import JobBoard
from flowkit.jobboard.fleet import Heartbeat, Member, MemberStatus
from tests.support.conductors import Conductors
from tests.support.wait import wait_until

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
