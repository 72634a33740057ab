"""Real ``flowkit-worker`` processes on the shared RabbitMQ, for the tests that kill, stop or cut them.

Each worker serves both test task modules (``TASK_MODULES``). Each test has its own exchange (a
uuid), so tests never see each other's workers; the exchanges and task queues are deleted afterwards.

A test module makes fixtures of the two generators here::

    exchange = pytest.fixture(worker_exchange, name="exchange")
    spawn = pytest.fixture(worker_spawner, name="spawn")
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu

from flowkit.workers import resolve_tasks, topology
from flowkit.workers.tasks import task_path
from tests.support.wait import wait_until
from tests.support.workers import TASK_MODULES

REPO = Path(__file__).resolve().parent.parent.parent
TOPIC = "it"
TASK_PATHS = [task_path(c) for c in resolve_tasks(list(TASK_MODULES))]


class WorkerProcess:
    """A ``flowkit-worker`` process serving :data:`TASK_MODULES`; its output goes to a log file."""

    def __init__(
        self,
        url: str,
        exchange: str,
        log: Path,
        threads: int = 2,
        heartbeat: float = 0.3,
        console_script: bool = False,
        max_async: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        script = Path(sys.executable).with_name("flowkit-worker")
        command = [str(script)] if console_script else [sys.executable, "-m", "flowkit.workers.cli"]
        self.log = log
        options = {
            "--transport": url,
            "--exchange": exchange,
            "--topic": TOPIC,
            "--tasks": ",".join(TASK_MODULES),
            "--threads": str(threads),
            "--heartbeat": str(heartbeat),
        }
        if max_async is not None:
            options["--max-async"] = str(max_async)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, *(part for pair in options.items() for part in pair), *extra],
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
        wait_until(
            lambda: ": ready" in self.text() or self.proc.poll() is not None,
            15,
            f"worker {self.pid} to be ready",
        )
        assert self.proc.poll() is None, self.text()
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def worker_exchange(rabbitmq_url: str) -> Iterator[str]:
    """A fresh exchange name; its exchanges and task queues are deleted afterwards."""
    name = f"fk-test-{uuid.uuid4().hex[:12]}"
    yield name
    with kombu.Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        for task in TASK_PATHS:
            with contextlib.suppress(Exception):
                channel.queue_delete(topology.task_queue(name, TOPIC, task))
        topology.delete_exchanges(conn.channel(), name)


def worker_spawner(
    rabbitmq_url: str, exchange: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts worker processes on ``exchange`` (options as :class:`WorkerProcess`'s); killed afterwards."""
    started: list[WorkerProcess] = []

    def start(**kwargs: Any) -> WorkerProcess:
        w = WorkerProcess(rabbitmq_url, exchange, tmp_path / f"worker-{len(started)}.log", **kwargs)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
