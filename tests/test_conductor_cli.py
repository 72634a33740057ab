"""``flowkit-conductor`` as a process, configured from the environment, on every board (``board_url``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flowkit.jobboard import backends as boards
from tests.support.conductors import REPO


def test_env_configured_daemon_runs_jobs_and_exits_0_on_sigint(
    tmp_path: Path, board_url: str, board_name: str, persistence_url: str
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FLOWKIT_BOARD": board_url,
        "FLOWKIT_BOARD_NAME": board_name,
        "FLOWKIT_PERSISTENCE": persistence_url,
    }
    with boards.fetch(board_name, board_url, persistence=persistence_url) as board:
        job = board.post_flow("tests.job_flows:steps", store={"job_key": "k", "trace_dir": str(tmp_path)})
        proc = subprocess.Popen(
            [sys.executable, "-m", "conductor", "--name", "env-conductor", "--allow", "tests"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while str(job.state) != "COMPLETE" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert str(job.state) == "COMPLETE"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            output = proc.communicate()[0].decode()
    assert "conductor 'env-conductor': consumed job" in output, output


def test_missing_board_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_")}
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "--persistence", "memory://"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--board" in result.stderr
