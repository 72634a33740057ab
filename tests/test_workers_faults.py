"""Faults of the worker-based engine, caused for real: hung tasks, broker cuts, killed workers, overload.

Real ``flowkit-worker`` processes and the shared RabbitMQ; a cut goes through :class:`TcpProxy`, never
by stopping the broker. Tasks write what they did to files (:class:`~tests.worker_tasks.Ledger`), so
the counts asserted here (lost, run twice, ran but not reverted) are what really happened.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from flowkit import LinearFlow, UnorderedFlow, engines, retry
from flowkit.exceptions import AtomTimeout, FlowkitError
from flowkit.states import AtomState, FlowState
from tests import worker_tasks as wt
from tests.support import tasks
from tests.support.background import Background
from tests.support.wait import wait_until
from tests.support.worker_processes import TOPIC, WorkerProcess, worker_exchange, worker_spawner
from tests.tcp_proxy import TcpProxy
from tests.test_workers_rabbitmq import load

pytestmark = pytest.mark.rabbitmq


exchange = pytest.fixture(worker_exchange, name="exchange")
spawn = pytest.fixture(worker_spawner, name="spawn")


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def ledger_counts(marker_dir: Path, names: list[str], succeeded: bool) -> dict[str, int]:
    """What the tasks' own files say: lost (never ran in a flow that succeeded), run twice, and ran
    but not reverted (in a flow that did not succeed)."""
    ran = {n: lines(marker_dir / f"ran-{n}") for n in names}
    reverted = {n: lines(marker_dir / f"reverted-{n}") for n in names}
    return {
        "lost": sum(1 for n in names if succeeded and ran[n] == 0),
        "twice": sum(1 for n in names if ran[n] > 1),
        "not_reverted": sum(1 for n in names if not succeeded and ran[n] and not reverted[n]),
        "ran": sum(1 for n in names if ran[n]),
    }


# -- (a) a task hung on a live worker is bounded by its timeout ---------------------------------------


def test_hung_task_on_a_live_worker_times_out_and_is_reverted(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    w = spawn(threads=2).wait_ready()
    engine = load(
        LinearFlow("hang").add(wt.Hang(name="stuck", timeout=1.5)),
        rabbitmq_url,
        exchange,
        timeout=5,
        store={"marker_dir": str(tmp_path)},
    )
    run = Background(engine.run, "engine")
    started = time.monotonic()
    run.wait(20)
    assert run.done.is_set(), "run() did not return: the hung task was not bounded"
    assert time.monotonic() - started < 8
    assert len(run.errors) == 1 and isinstance(run.errors[0], AtomTimeout), run.errors
    assert "'stuck'" in str(run.errors[0]) and "1.5" in str(run.errors[0])
    assert engine.storage.get_atom_state("stuck") is AtomState.REVERTED
    assert lines(tmp_path / "reverted-stuck") == 1  # the revert ran, on the worker's other thread
    wait_until(lambda: "abandoned" in w.text(), 5, "the worker to say it abandoned the task")
    assert w.proc.poll() is None


def test_timed_out_attempt_is_retried_and_the_worker_keeps_serving(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    """The timeout goes through the retry controller like any failure. The worker has ONE thread,
    held by the hung call: it must still take the revert and the retry (it abandoned the call and
    says how many threads are held), or the flow could not finish."""
    w = spawn(threads=1).wait_ready()
    flow = LinearFlow("hang-retry", retry=retry.Times(attempts=3)).add(wt.Hang(name="stuck", timeout=1.0))
    engine = load(flow, rabbitmq_url, exchange, timeout=5, store={"marker_dir": str(tmp_path), "hang": 4.0})
    run = Background(engine.run, "engine")
    run.wait(25)
    assert run.done.is_set() and not run.errors, run.errors
    assert engine.storage.fetch("hung") == w.pid
    assert lines(tmp_path / "started-stuck") == 2
    wait_until(lambda: "discarded" in w.text(), 10, "the late result to be discarded")


def test_engine_default_timeout_bounds_atoms_without_their_own(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    spawn(threads=2).wait_ready()
    engine = load(
        LinearFlow("hang-default").add(wt.Hang(name="stuck")),
        rabbitmq_url,
        exchange,
        timeout=5,
        default_timeout=1.0,
        store={"marker_dir": str(tmp_path)},
    )
    with pytest.raises(AtomTimeout, match="'stuck'"):
        engine.run()
    assert engine.storage.get_atom_state("stuck") is AtomState.REVERTED


# -- (b) a broker cut with a backlog ------------------------------------------------------------------


def test_broker_cut_with_a_backlog_finishes_or_reverts_everything_that_ran(
    rabbitmq_url: str, exchange: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(("127.0.0.1", int(rabbitmq_url.rsplit(":", 1)[1].split("/")[0])))
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    workers = [
        WorkerProcess(url, exchange, tmp_path / f"worker-{i}.log", threads=4, heartbeat=0.5) for i in range(2)
    ]
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        for w in workers:
            w.wait_ready()
        names = [f"t{i}" for i in range(60)]
        flow = UnorderedFlow("cut").add(*(wt.Ledger(name=n) for n in names))
        engine = load(flow, url, exchange, timeout=20, store={"marker_dir": str(marks), "pause": 0.3})
        run = Background(engine.run, "engine")
        wait_until(lambda: len(list(marks.glob("ran-*"))) >= 12, 15, "a few tasks to run")
        proxy.cut_for(6.0)
        run.wait(60)
        assert run.done.is_set(), "the engine hung after the cut"
        succeeded = engine.storage.flow_state is FlowState.SUCCESS
        counts = ledger_counts(marks, names, succeeded)
        assert counts["lost"] == counts["twice"] == counts["not_reverted"] == 0, (counts, run.errors)
        assert succeeded or engine.storage.flow_state is FlowState.REVERTED, engine.storage.flow_state
        # The workers serve again: a new flow, connected directly to the broker, runs on them.
        after = load(
            UnorderedFlow("after").add(*(tasks.Add(name=f"a{i}", provides=f"s{i}") for i in range(8))),
            rabbitmq_url,
            exchange,
            timeout=10,
            store={"x": 1, "y": 2},
        )
        after.run()
        assert after.storage.fetch("s7") == 3
        for w in workers:
            assert w.proc.poll() is None, w.text()
    finally:
        for w in workers:
            w.stop()
        proxy.close()


# -- (c) busy but healthy workers --------------------------------------------------------------------


def test_a_backlog_waits_for_busy_workers_instead_of_timing_out(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    """100 tasks of 0.4 s on 2 x 4 threads take 5 s, longer than transition_timeout (3 s): requests
    wait in the engine for a free thread, and none fails for having waited."""
    a, b = spawn(threads=4, heartbeat=0.5), spawn(threads=4, heartbeat=0.5)
    a.wait_ready(), b.wait_ready()
    names = [f"t{i}" for i in range(100)]
    flow = UnorderedFlow("busy").add(*(wt.Ledger(name=n) for n in names))
    engine = load(flow, rabbitmq_url, exchange, timeout=3, store={"marker_dir": str(tmp_path), "pause": 0.4})
    engine.run()
    counts = ledger_counts(tmp_path, names, True)
    assert counts["lost"] == counts["twice"] == 0, counts


# -- (d) a killed worker and its single-threaded replacement --------------------------------------------


def test_retry_after_a_killed_worker_runs_on_a_single_threaded_replacement(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    victim = spawn(threads=2, heartbeat=0.3).wait_ready()
    flow = LinearFlow("replace", retry=retry.Times(attempts=3)).add(wt.SlowOnce(name="slow"))
    engine = load(flow, rabbitmq_url, exchange, timeout=6, store={"marker_dir": str(tmp_path)})
    run = Background(engine.run, "engine")
    wait_until((tmp_path / "started-slow").exists, 15, "the task to start")
    time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    replacement = spawn(threads=1, heartbeat=0.3)
    run.wait(20)
    assert run.done.is_set(), "the engine hung"
    assert not run.errors, (run.errors, replacement.text())
    assert engine.storage.fetch("slow_once") == replacement.pid
    assert "redelivered" in replacement.text()  # the killed worker's request was refused, not run


def test_atom_timeout_is_a_flowkit_error() -> None:
    assert issubclass(AtomTimeout, FlowkitError)
    with pytest.raises(FlowkitError, match="timeout"):
        wt.Noop(name="n", timeout=-1)
    with pytest.raises(FlowkitError, match="timeout"):
        engines.load(
            LinearFlow("x").add(wt.Noop(name="n")),
            engine="worker-based",
            transport="memory://",
            topics=[TOPIC],
            default_timeout=0,
        )


def test_sigterm_exits_although_an_abandoned_call_never_returns(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    w = spawn(threads=1, console_script=True).wait_ready()
    engine = load(
        LinearFlow("hang-stop").add(wt.Hang(name="stuck", timeout=0.5)),
        rabbitmq_url,
        exchange,
        store={"marker_dir": str(tmp_path)},
    )
    with pytest.raises(AtomTimeout):
        engine.run()
    wait_until(lambda: "abandoned request" in w.text(), 5, "the worker to abandon the call")
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(10) == 0, w.text()
