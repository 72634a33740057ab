"""The worker-based engine against the real RabbitMQ, with real worker processes that the tests kill.

Every test has its own exchange (a uuid), so tests never see each other's workers; the exchanges and
task queues are deleted afterwards. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import kombu
import pytest

from flowkit import LinearFlow, UnorderedFlow, engines, retry
from flowkit.exceptions import NoWorkerAvailable, RequestTimeout
from flowkit.states import AtomState
from flowkit.workers import Worker, protocol, topology
from flowkit.workers.worker import ANNOUNCE_AFTER_S
from tests import worker_tasks as wt
from tests.support import tasks
from tests.support.background import Background
from tests.support.dispatchers import worker_options
from tests.support.wait import wait_until
from tests.support.worker_processes import TOPIC, worker_exchange, worker_spawner
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq

exchange = pytest.fixture(worker_exchange, name="exchange")
spawn = pytest.fixture(worker_spawner, name="spawn")


def load(flow: Any, url: str, exchange: str, timeout: float = 10.0, **kwargs: Any) -> engines.Engine:
    return engines.load(flow, **worker_options(exchange, TOPIC, timeout, transport=url), **kwargs)


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
    run = Background(engine.run, "engine")
    marker = tmp_path / "started-slow"
    wait_until(marker.exists, 15, "the task to start")
    victim = int(marker.read_text())
    started = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    run.wait(20)
    assert run.done.is_set() and not run.errors, run.errors
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
    run = Background(engine.run, "engine")
    wait_until((tmp_path / "started-nap").exists, 15, "the task to start")
    time.sleep(ANNOUNCE_AFTER_S * 5)  # a worker announces a task that is still running after 20 ms
    started = time.monotonic()
    w.proc.kill()
    (tmp_path / "started-nap").unlink()
    assert failed.wait(5), "the engine did not notice the dead worker"
    assert time.monotonic() - started < 3  # 3 heartbeats of 0.3 s; transition_timeout is 60 s
    replacement = spawn(heartbeat=0.3)  # the revert needs a worker too
    run.wait(15)
    assert run.done.is_set()
    assert len(run.errors) == 1 and isinstance(run.errors[0], RequestTimeout), run.errors
    assert "stopped heartbeating" in str(run.errors[0]) and "'nap'" in str(run.errors[0])
    assert engine.storage.get_atom_state("nap") is AtomState.REVERTED
    wait_until(lambda: "redelivered" in replacement.text(), 15, "the redelivered request to be refused")
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
    run = Background(engine.run, "engine")
    wait_until((tmp_path / "started-nap").exists, 15, "the task to start")
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(10) == 0, w.text()
    run.wait(10)
    assert not run.errors, run.errors
    assert engine.storage.fetch("slept") == 1.0


def test_malformed_messages_are_rejected_and_the_worker_keeps_serving(
    rabbitmq_url: str, exchange: str, spawn: Any
) -> None:
    w = spawn().wait_ready()
    queue = topology.task_queue(exchange, TOPIC, "tests.support.tasks.Add")
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
    wait_until(lambda: w.text().count("rejected a message") == 3, 15, "the rejections")
    engine = load(LinearFlow("ok").add(tasks.Add()), rabbitmq_url, exchange, store={"x": 20, "y": 22})
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
    worker = Worker(url, exchange, TOPIC, [wt.Sleepy, tasks.Add], threads=2, heartbeat=1.0)
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    try:
        assert worker.ready.wait(10)
        flow = LinearFlow("blip").add(wt.Sleepy(name="nap"), tasks.Add())
        engine = load(
            flow,
            url,
            exchange,
            timeout=20,
            store={"marker_dir": str(tmp_path), "seconds": 3.0, "x": 1, "y": 1},
        )
        run = Background(engine.run, "engine")
        wait_until((tmp_path / "started-nap").exists, 15, "the task to start")
        proxy.cut_for(1.0)  # what clients see when the broker restarts
        run.wait(15)
        assert run.done.is_set(), "the engine hung"
        assert not run.errors, run.errors
        assert engine.storage.fetch("slept") == 3.0 and engine.storage.fetch("sum") == 2
        assert worker.ready.is_set() and worker_thread.is_alive()
    finally:
        worker.stop()
        worker_thread.join(10)
        proxy.close()
