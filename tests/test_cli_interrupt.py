"""``flowkit run`` interrupted: a real process, real SIGINTs (what Ctrl-C sends).

The flows below leave a trace file (one line per execute/revert start and end) so the test knows
when to interrupt and can check afterwards what ran; the slow task sleeps long enough that "at once"
and "after it finished" are seconds apart. The test module doubles as the flows' factory module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[1]
HERE = "tests.test_cli_interrupt"


class Traced(Task):
    """Appends ``start NAME`` / ``done NAME`` (and ``revert NAME``) to ``trace``; sleeps ``pause`` s."""

    def __init__(self, name: str, pause: float = 0.0) -> None:
        super().__init__(name=name)
        self.pause = pause

    def execute(self, trace: str) -> str:
        _append(trace, f"start {self.name}")
        time.sleep(self.pause)
        _append(trace, f"done {self.name}")
        return self.name

    def revert(self, trace: str, **_: object) -> None:
        _append(trace, f"revert {self.name}")


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def slow(pause: float = 3.0) -> LinearFlow:
    """fast-a, then slow-b (``pause`` s), then c and d: interrupted while b runs, c and d never start."""
    return LinearFlow("slow").add(
        Traced("fast-a"), Traced("slow-b", pause), Traced("never-c"), Traced("never-d")
    )


def slow_long() -> LinearFlow:
    return slow(pause=30.0)


def two_slow() -> LinearFlow:
    """Two slow atoms side by side (parallel engine): both are running when the interrupt comes."""
    return LinearFlow("two-slow").add(
        UnorderedFlow("pair").add(Traced("left", 3.0), Traced("right", 3.0)), Traced("after")
    )


def sleepy() -> LinearFlow:
    """A factory that takes its time (an import that connects somewhere, say); marks when it starts."""
    Path(os.environ["TRACE_DIR"], "factory-started").touch()
    time.sleep(30)
    return slow()


# -- the harness ------------------------------------------------------------------------------------


def _sigint_default() -> None:
    """In the child before it starts Python: SIGINT at its default action. A command started in the
    background of a non-interactive shell (``cmd &``, as a CI step or a ``nohup`` runs it) inherits
    SIGINT ignored, and Python leaves an ignored SIGINT ignored (no KeyboardInterrupt), as it should:
    the interrupt before the run, which nothing of flowkit handles yet, was then lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """``python -m flowkit.cli.main run FACTORY ...`` with its output in files."""

    def __init__(self, tmp_path: Path, factory: str, *options: str) -> None:
        self.trace = tmp_path / "trace.log"
        self.out_path, self.err_path = tmp_path / "out.txt", tmp_path / "err.txt"
        store = f'{{"trace": "{self.trace}"}}'
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "flowkit.cli.main", "run", f"{HERE}:{factory}"),
                    *("--store", store, "--plain", *options),
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO), "TRACE_DIR": str(tmp_path)},
                stdout=out,
                stderr=err,
                preexec_fn=_sigint_default,
            )

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def traced(self) -> list[str]:
        return self.trace.read_text().splitlines() if self.trace.exists() else []

    def wait(self, limit: float) -> int:
        try:
            return self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {limit} s:\n{self.output}") from None

    def interrupt(self) -> float:
        os.kill(self.proc.pid, signal.SIGINT)
        return time.monotonic()


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    made: list[Run] = []
    yield made
    for r in made:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)


def _start(runs: list[Run], tmp_path: Path, factory: str, *options: str) -> Run:
    run = Run(tmp_path, factory, *options)
    runs.append(run)
    return run


# -- the tests --------------------------------------------------------------------------------------


def test_sigint_says_what_it_waits_for_at_once_then_suspends_and_exits_130(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = _start(runs, tmp_path, "slow")
    wait_until(lambda: "start slow-b" in run.traced(), 30, "slow-b to start")
    sent = run.interrupt()
    wait_until(lambda: "interrupted" in run.output, 1.5, "the interrupt message")
    assert run.proc.poll() is None  # it waits for slow-b
    said = run.output
    assert "suspending after the 1 running atom (slow-b) finishes" in said, said
    assert "Ctrl-C again to exit now" in said, said
    assert run.wait(15) == 130
    took = time.monotonic() - sent
    assert 1.0 < took < 10, took  # slow-b had ~3 s left: it was waited for
    assert run.traced() == ["start fast-a", "done fast-a", "start slow-b", "done slow-b"]
    out = run.output
    assert "Traceback" not in out and "Aborted" not in out, out
    assert "flow 'slow' SUSPENDED" in out, out
    assert "done: fast-a, slow-b" in out and "not started: never-c, never-d" in out, out
    assert "not saved" in out, out  # no persistence: nothing to resume from


def test_a_second_sigint_exits_at_once_with_130(tmp_path: Path, runs: list[Run]) -> None:
    run = _start(runs, tmp_path, "slow_long")
    wait_until(lambda: "start slow-b" in run.traced(), 30, "slow-b to start")
    run.interrupt()
    wait_until(lambda: "interrupted" in run.output, 1.5, "the interrupt message")
    sent = run.interrupt()
    assert run.wait(5) == 130
    assert time.monotonic() - sent < 1.5
    out = run.output
    assert "Traceback" not in out, out
    assert "still running: slow-b" in out and "not started: never-c, never-d" in out, out
    assert "done slow-b" not in run.traced()


def test_parallel_run_names_every_running_atom(tmp_path: Path, runs: list[Run]) -> None:
    run = _start(runs, tmp_path, "two_slow", "--engine", "parallel")
    wait_until(lambda: {"start left", "start right"} <= set(run.traced()), 30, "both atoms to start")
    run.interrupt()
    wait_until(lambda: "interrupted" in run.output, 1.5, "the interrupt message")
    assert "suspending after the 2 running atoms (left, right) finish" in run.output, run.output
    assert run.wait(15) == 130
    assert "start after" not in run.traced()
    assert "done: left, right" in run.output and "not started: after" in run.output, run.output


def test_on_interrupt_revert_reverts_what_ran_and_ends_reverted(tmp_path: Path, runs: list[Run]) -> None:
    run = _start(runs, tmp_path, "slow", "--on-interrupt", "revert")
    wait_until(lambda: "start slow-b" in run.traced(), 30, "slow-b to start")
    run.interrupt()
    wait_until(lambda: "interrupted" in run.output, 1.5, "the interrupt message")
    assert "reverting after the 1 running atom (slow-b) finishes" in run.output, run.output
    assert run.wait(15) == 130
    assert run.traced() == [
        "start fast-a",
        "done fast-a",
        "start slow-b",
        "done slow-b",
        "revert slow-b",
        "revert fast-a",
    ]
    out = run.output
    assert "flow 'slow' REVERTED" in out and "Traceback" not in out, out


def test_sigint_before_the_run_starts_exits_130_in_one_line(tmp_path: Path, runs: list[Run]) -> None:
    run = _start(runs, tmp_path, "sleepy")
    wait_until(lambda: (tmp_path / "factory-started").exists(), 30, "the factory to be called")
    run.interrupt()
    assert run.wait(5) == 130  # at once, not when the factory returns (30 s)
    out = run.output
    assert out.strip() == "interrupted", out
