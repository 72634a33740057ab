"""``flowkit-conductor`` failing cleanly: a database it cannot reach, and SIGTERM/SIGINT at any moment.

Real processes, real signals. The board is a SQLite file (no service needed); persistence is
PostgreSQL at a closed port (refused at once), through a proxy that accepts connections and then says
nothing (``cut(blackhole=True)``: a hung server or a dropped network), or through a proxy that is
cut while a job runs. Every wait is bounded; the bounds leave room for a busy 2-core machine.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from conductor import logs
from flowkit.jobboard import Job, JobState
from flowkit.jobboard import backends as boards
from tests.job_flows import trace_of
from tests.support.conductors import REPO
from tests.support.wait import wait_until
from tests.tcp_proxy import TcpProxy

PASSWORD = "s3cr3t-pw"


class Daemon:
    """One ``python -m conductor`` process logging to a file."""

    def __init__(self, tmp_path: Path, board: str, persistence: str, *extra: str) -> None:
        self.log_path = tmp_path / "conductor.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "conductor", "--board", board, "--persistence", persistence),
                    *("--name", "sig", "--allow", "tests", *extra),
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, limit: float) -> int:
        """The exit status; fails (with the log) if the process still runs after ``limit`` seconds."""
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {limit} s:\n{self.log}") from None

    def signal_and_time(self, signum: int, limit: float) -> tuple[int, float]:
        """Send ``signum``; return (exit status, seconds it took), failing past ``limit`` seconds."""
        self.proc.send_signal(signum)
        sent = time.monotonic()
        code = self.wait(limit)
        return code, time.monotonic() - sent

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_url)
    with TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as p:
        yield p


def _through(postgres_url: str, proxy: TcpProxy, query: str = "") -> str:
    parts = urlsplit(postgres_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{proxy.address}", parts.path, query, ""))


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    yield made
    for d in made:
        d.close()


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


# -- a database that is not there at start-up ------------------------------------------------------


def test_unreachable_persistence_exits_at_once_with_one_error_line(
    tmp_path: Path, closed_port: int, daemons: list[Daemon]
) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port}/flowkit"
    started = time.monotonic()
    d = Daemon(tmp_path, f"sqlite:///{tmp_path}/board.db", url, "--startup-timeout", "3")
    daemons.append(d)
    code = d.wait(12)
    took = time.monotonic() - started
    output = d.log
    assert code != 0 and took < 12, (code, took)
    lines = _error_lines(output)
    assert len(lines) == 1, output
    assert "Traceback" not in output and PASSWORD not in output
    assert "persistence" in lines[0] and f"127.0.0.1:{closed_port}" in lines[0], lines[0]


def test_a_board_that_stalls_fails_the_start_naming_the_board(
    tmp_path: Path, proxy: TcpProxy, postgres_url: str, daemons: list[Daemon]
) -> None:
    proxy.cut(blackhole=True)
    d = Daemon(tmp_path, _through(postgres_url, proxy), postgres_url, "--startup-timeout", "2")
    daemons.append(d)
    code = d.wait(10)
    lines = _error_lines(d.log)
    assert code != 0 and len(lines) == 1 and "Traceback" not in d.log, d.log
    assert "board" in lines[0] and proxy.address in lines[0], lines[0]


def test_a_server_that_accepts_and_stalls_fails_the_start_within_the_timeout(
    tmp_path: Path, proxy: TcpProxy, postgres_url: str, daemons: list[Daemon]
) -> None:
    proxy.cut(blackhole=True)
    started = time.monotonic()
    d = Daemon(
        tmp_path, f"sqlite:///{tmp_path}/board.db", _through(postgres_url, proxy), "--startup-timeout", "3"
    )
    daemons.append(d)
    code = d.wait(10)
    took = time.monotonic() - started
    lines = _error_lines(d.log)
    assert code != 0 and took < 10, (code, took)
    assert len(lines) == 1 and "Traceback" not in d.log, d.log
    assert "persistence" in lines[0] and proxy.address in lines[0] and "3" in lines[0], lines[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_connection_attempts_exits_within_a_second(
    tmp_path: Path, proxy: TcpProxy, postgres_url: str, daemons: list[Daemon], signum: int
) -> None:
    proxy.cut(blackhole=True)  # every connection attempt hangs: the signal must not wait for it
    d = Daemon(
        tmp_path, f"sqlite:///{tmp_path}/board.db", _through(postgres_url, proxy), "--startup-timeout", "60"
    )
    daemons.append(d)
    wait_until(lambda: proxy.accepted > 0, 20, "the conductor to try the database")
    time.sleep(0.5)
    code, took = d.signal_and_time(signum, 10)
    assert took < 1.5, (took, d.log)
    assert code == 0 and "Traceback" not in d.log, d.log


# -- a database that goes away while jobs run ------------------------------------------------------


def _post(board_url: str, persistence: str, tmp_path: Path, key: str, n: int, delay: float) -> Job:
    with boards.fetch("flowkit", board_url, persistence=persistence) as board:
        store = {"job_key": key, "trace_dir": str(tmp_path), "delay": delay}
        return board.post_flow("tests.job_flows:steps", store=store, factory_kwargs={"n": n}, name=key)


def _job(board_url: str, job: Job) -> tuple[JobState, int]:
    """The job's state and attempts, as the board has them now."""
    with boards.fetch("flowkit", board_url) as board:
        again = board.get_job(job.uuid)
        return again.state, again.attempts


def _started(tmp_path: Path, key: str) -> list[str]:
    return [s for e, s, _ in trace_of(tmp_path, key) if e == "start"]


def test_sigterm_while_storage_retries_exits_within_a_second(
    tmp_path: Path, proxy: TcpProxy, postgres_url: str, daemons: list[Daemon]
) -> None:
    board_url = f"sqlite:///{tmp_path}/board.db"
    job = _post(board_url, postgres_url, tmp_path, "outage", n=20, delay=0.3)
    d = Daemon(tmp_path, board_url, _through(postgres_url, proxy), "--grace", "10")
    daemons.append(d)
    wait_until(lambda: len(_started(tmp_path, "outage")) >= 2, 30, "two steps to start")
    proxy.cut()
    wait_until(lambda: "retrying" in d.log, 10, "the conductor to retry the database")
    time.sleep(0.5)
    code, took = d.signal_and_time(signal.SIGTERM, 15)
    assert took < 2.0, (took, d.log)
    assert code == 0 and "Traceback" not in d.log, d.log
    assert _job(board_url, job) == (JobState.UNCLAIMED, 0)


def test_an_outage_longer_than_the_retry_bound_pauses_claims_and_the_job_finishes(
    tmp_path: Path, proxy: TcpProxy, postgres_url: str, daemons: list[Daemon]
) -> None:
    board_url = f"sqlite:///{tmp_path}/board.db"
    job = _post(board_url, postgres_url, tmp_path, "long", n=8, delay=0.3)
    d = Daemon(tmp_path, board_url, _through(postgres_url, proxy, "retry_timeout=1"))
    daemons.append(d)
    wait_until(lambda: len(_started(tmp_path, "long")) >= 2, 30, "two steps to start")
    proxy.cut()
    wait_until(
        lambda: re.search(r"persistence \S+ unreachable", d.log), 15, "the conductor to notice the outage"
    )
    time.sleep(3)  # several retry bounds: the job must not be claimed and failed again and again
    proxy.restore()
    wait_until(lambda: "consumed job" in d.log, 60, "the job to finish")
    log = d.log
    assert "Traceback" not in log, log
    assert len(re.findall(r"persistence \S+ unreachable", log)) == 1, log
    assert log.count("; retrying in") <= 4, log  # the driver's warning at every retry: not each time
    assert re.search(r"persistence \S+ reachable again", log), log
    assert log.count("claimed job") == 2, log  # given back once, uncounted; not claimed during the outage
    assert f"consumed job {job}" in log, log
    code, _ = d.signal_and_time(signal.SIGTERM, 10)
    assert code == 0


# -- the log's own logic ----------------------------------------------------------------------------


def _record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("flowkit.test", level, __file__, 1, msg, args, None)


def test_a_repeated_warning_is_said_once_then_counted() -> None:
    repeats = logs.Repeats(window=60)
    retry = "database %s: refused; retrying in %.2f s"
    passed = [repeats.filter(_record(retry, "pg://db", d)) for d in (0.05, 0.1, 0.2, 0.4)]
    assert passed == [True, False, False, False]
    assert repeats.filter(_record(retry, "pg://other", 0.05))  # another database: another problem
    assert repeats.filter(_record("skipping %s", "job-1")) and repeats.filter(_record("skipping %s", "job-2"))
    assert all(repeats.filter(_record("claimed %s", "job", level=logging.INFO)) for _ in range(3))
    repeats.window = 0.0  # the window passed: the next one is shown, with the count of those dropped
    again = _record(retry, "pg://db", 0.8)
    assert repeats.filter(again) and again.getMessage().endswith("(3 more like it before)")


def test_a_multi_line_message_is_logged_on_one_line() -> None:
    formatter = logs.OneLine(logs.FORMAT)
    line = formatter.format(_record("connection failed: refused\n\tIs the server running?\n"))
    assert "\n" not in line and line.endswith("connection failed: refused Is the server running?")
