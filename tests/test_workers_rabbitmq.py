"""The worker-based engine against the real RabbitMQ, with real worker processes that the tests kill.

Every test has its own exchange (a uuid), so tests never see each other's workers; the exchanges and
task queues are deleted afterwards. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest

from flowkit import LinearFlow, UnorderedFlow, engines, retry
from flowkit.exceptions import NoWorkerAvailable, RequestTimeout
from flowkit.states import AtomState
from flowkit.workers import Worker, protocol, resolve_tasks, topology
from flowkit.workers.tasks import task_path
from flowkit.workers.worker import ANNOUNCE_AFTER_S
from tests import worker_tasks as wt
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq

REPO = Path(__file__).resolve().parent.parent
TOPIC = "it"
TASK_PATHS = [task_path(c) for c in resolve_tasks(["tests.worker_tasks"])]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


class WorkerProcess:
    """A ``flowkit-worker`` process serving ``tests.worker_tasks``; its output goes to a log file."""

    def __init__(
        self,
        url: str,
        exchange: str,
        log: Path,
        threads: int = 2,
        heartbeat: float = 0.3,
        console_script: bool = False,
    ) -> None:
        script = Path(sys.executable).with_name("flowkit-worker")
        command = [str(script)] if console_script else [sys.executable, "-m", "flowkit.workers.cli"]
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    *command,
                    "--transport",
                    url,
                    "--exchange",
                    exchange,
                    "--topic",
                    TOPIC,
                    "--tasks",
                    "tests.worker_tasks",
                    "--threads",
                    str(threads),
                    "--heartbeat",
                    str(heartbeat),
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> WorkerProcess:
        wait_for(
            f"worker {self.pid} to be ready", lambda: ": ready" in self.text() or self.proc.poll() is not None
        )
        assert self.proc.poll() is None, self.text()
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def exchange(rabbitmq_url: str) -> Iterator[str]:
    name = f"fk-test-{uuid.uuid4().hex[:12]}"
    yield name
    with kombu.Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        for task in TASK_PATHS:
            with contextlib.suppress(Exception):
                channel.queue_delete(topology.task_queue(name, TOPIC, task))
        topology.delete_exchanges(conn.channel(), name)


@pytest.fixture
def spawn(rabbitmq_url: str, exchange: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(**kwargs: Any) -> WorkerProcess:
        w = WorkerProcess(rabbitmq_url, exchange, tmp_path / f"worker-{len(started)}.log", **kwargs)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def load(flow: Any, url: str, exchange: str, timeout: float = 10.0, **kwargs: Any) -> engines.Engine:
    return engines.load(
        flow,
        engine="worker-based",
        transport=url,
        exchange=exchange,
        topics=[TOPIC],
        transition_timeout=timeout,
        **kwargs,
    )


def run_in_thread(engine: engines.Engine) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_two_workers_share_one_topic(rabbitmq_url: str, exchange: str, spawn: Any) -> None:
    a, b = spawn(threads=2), spawn(threads=2)
    a.wait_ready(), b.wait_ready()
    flow = UnorderedFlow("share").add(*(wt.WhereAmI(name=f"w{i}", provides=f"pid{i}") for i in range(24)))
    engine = load(flow, rabbitmq_url, exchange, store={"pause": 0.05})
    engine.run()
    pids = {engine.storage.fetch(f"pid{i}") for i in range(24)}
    assert pids == {a.pid, b.pid}


def test_worker_killed_mid_task_retry_finishes_on_another(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    workers = {w.pid: w for w in (spawn(), spawn())}
    for w in workers.values():
        w.wait_ready()
    flow = LinearFlow("kill", retry=retry.Times(attempts=3)).add(wt.SlowOnce(name="slow"))
    engine = load(flow, rabbitmq_url, exchange, timeout=30, store={"marker_dir": str(tmp_path)})
    thread, errors = run_in_thread(engine)
    marker = tmp_path / "started-slow"
    wait_for("the task to start", marker.exists)
    victim = int(marker.read_text())
    started = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    thread.join(20)
    assert not thread.is_alive() and not errors, errors
    assert time.monotonic() - started < 10  # well before transition_timeout (30 s)
    survivor = engine.storage.fetch("slow_once")
    assert survivor in workers and survivor != victim


def test_lone_worker_killed_mid_task_fails_by_heartbeat(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    """The atom fails within a few heartbeats, not after transition_timeout (and not never, as in
    TaskFlow). A new worker then reverts it, and refuses the killed worker's request, which the broker
    hands it again, instead of running it a second time."""
    w = spawn(heartbeat=0.3).wait_ready()
    engine = load(
        LinearFlow("lone").add(wt.Sleepy(name="nap")),
        rabbitmq_url,
        exchange,
        timeout=60,
        store={"marker_dir": str(tmp_path), "seconds": 30},
    )
    failed = threading.Event()
    engine.atom_notifier.register(AtomState.FAILURE, lambda _state, _details: failed.set())
    thread, errors = run_in_thread(engine)
    wait_for("the task to start", (tmp_path / "started-nap").exists)
    time.sleep(ANNOUNCE_AFTER_S * 5)  # a worker announces a task that is still running after 20 ms
    started = time.monotonic()
    w.proc.kill()
    (tmp_path / "started-nap").unlink()
    assert failed.wait(5), "the engine did not notice the dead worker"
    assert time.monotonic() - started < 3  # 3 heartbeats of 0.3 s; transition_timeout is 60 s
    replacement = spawn(heartbeat=0.3)  # the revert needs a worker too
    thread.join(15)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], RequestTimeout), errors
    assert "stopped heartbeating" in str(errors[0]) and "'nap'" in str(errors[0])
    assert engine.storage.get_atom_state("nap") is AtomState.REVERTED
    wait_for("the redelivered request to be refused", lambda: "redelivered" in replacement.text())
    assert not (tmp_path / "started-nap").exists()


def test_sigterm_finishes_the_running_task_then_exits_0(
    rabbitmq_url: str, exchange: str, spawn: Any, tmp_path: Path
) -> None:
    w = spawn(console_script=True).wait_ready()
    engine = load(
        LinearFlow("term").add(wt.Sleepy(name="nap")),
        rabbitmq_url,
        exchange,
        store={"marker_dir": str(tmp_path), "seconds": 1.0},
    )
    thread, errors = run_in_thread(engine)
    wait_for("the task to start", (tmp_path / "started-nap").exists)
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(10) == 0, w.text()
    thread.join(10)
    assert not errors, errors
    assert engine.storage.fetch("slept") == 1.0


def test_malformed_messages_are_rejected_and_the_worker_keeps_serving(
    rabbitmq_url: str, exchange: str, spawn: Any
) -> None:
    w = spawn().wait_ready()
    queue = topology.task_queue(exchange, TOPIC, "tests.worker_tasks.Add")
    with kombu.Connection(rabbitmq_url) as conn:
        producer = kombu.Producer(conn.channel())
        for body, content_type in [
            (b"\x00garbage", protocol.CONTENT_TYPE),
            (b"\x80\x04K\x01.", "application/x-python-serialize"),
            (b'{"protocol": 1, "type": "request", "uuid": "x"}', protocol.CONTENT_TYPE),
        ]:
            producer.publish(
                body, exchange="", routing_key=queue, content_type=content_type, content_encoding="binary"
            )
    wait_for("the rejections", lambda: w.text().count("rejected a message") == 3)
    engine = load(LinearFlow("ok").add(wt.Add()), rabbitmq_url, exchange, store={"x": 20, "y": 22})
    engine.run()
    assert engine.storage.fetch("sum") == 42
    log = w.text()
    assert "not JSON" in log and "'application/x-python-serialize' refused" in log and "missing field" in log
    assert w.proc.poll() is None


def test_no_worker_names_the_task_and_topics(rabbitmq_url: str, exchange: str) -> None:
    engine = engines.load(
        LinearFlow("none").add(wt.Noop(name="n")),
        engine="worker-based",
        transport=rabbitmq_url,
        exchange=exchange,
        topics=["ghosts", "spirits"],
        transition_timeout=0.5,
    )
    with pytest.raises(NoWorkerAvailable, match=r"tests\.worker_tasks\.Noop.*'ghosts', 'spirits'"):
        engine.run()


def test_engine_and_worker_reconnect_after_the_broker_drops_them(
    rabbitmq_url: str, exchange: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(("127.0.0.1", int(rabbitmq_url.rsplit(":", 1)[1].split("/")[0])))
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
    worker = Worker(url, exchange, TOPIC, [wt.Sleepy, wt.Add], threads=2, heartbeat=1.0)
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    try:
        assert worker.ready.wait(10)
        flow = LinearFlow("blip").add(wt.Sleepy(name="nap"), wt.Add())
        engine = load(
            flow,
            url,
            exchange,
            timeout=20,
            store={"marker_dir": str(tmp_path), "seconds": 3.0, "x": 1, "y": 1},
        )
        thread, errors = run_in_thread(engine)
        wait_for("the task to start", (tmp_path / "started-nap").exists)
        proxy.cut_for(1.0)  # what clients see when the broker restarts
        thread.join(15)
        assert not thread.is_alive(), "the engine hung"
        assert not errors, errors
        assert engine.storage.fetch("slept") == 3.0 and engine.storage.fetch("sum") == 2
        assert worker.ready.is_set() and worker_thread.is_alive()
    finally:
        worker.stop()
        worker_thread.join(10)
        proxy.close()
