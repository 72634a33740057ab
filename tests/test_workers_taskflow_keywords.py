"""Remote workers set up the way TaskFlow programs do it, over kombu's in-memory transport.

TaskFlow names the kombu transport apart from the broker URL (``Worker(transport="memory", ...)``,
``url=...``), waits for a worker with ``Worker.wait()``, may load the engine with one ``engine_conf``
dict, and serves task classes of the program itself (``"__main__:Task"``) on worker threads.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from flowkit import LinearFlow, engines
from flowkit.exceptions import InvalidFlowError, WorkerError
from flowkit.workers.options import broker_url
from tests import worker_tasks as wt

pytest.importorskip("kombu")


@pytest.mark.parametrize(
    ("transport", "url", "expected"),
    [
        ("memory", None, "memory://"),
        ("amqp://guest@h:5672//", None, "amqp://guest@h:5672//"),
        (None, "amqp://guest@h//", "amqp://guest@h//"),
        ("amqp", "guest@h:5672//", "amqp://guest@h:5672//"),
        ("filesystem", "amqp://h//", "amqp://h//"),
        (None, None, ""),
    ],
)
def test_broker_url_reads_flowkit_and_taskflow_forms(
    transport: str | None, url: str | None, expected: str
) -> None:
    assert broker_url(transport, url) == expected


def test_a_worker_without_topic_or_broker_is_refused() -> None:
    with pytest.raises(WorkerError, match="needs a topic"):
        from flowkit.workers import Worker

        Worker(transport="memory", exchange="x", tasks=[wt.Echo])
    with pytest.raises(WorkerError, match="needs a broker"):
        Worker(exchange="x", topic="t", tasks=[wt.Echo])


def test_taskflow_keywords_wait_and_engine_conf_run_a_flow_on_a_worker() -> None:
    from flowkit.workers import Worker

    exchange = f"fk-tf-{uuid.uuid4().hex[:10]}"
    shared = {"exchange": exchange, "transport": "memory", "transport_options": {"polling_interval": 0.001}}
    worker = Worker(topic="calc-1", tasks=["tests.worker_tasks:Echo"], heartbeat=0.2, **shared)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.wait(10) is True
        conf = {"engine": "worker-based", "topics": ["calc-1"], "transition_timeout": 10, **shared}
        engine = engines.load(
            LinearFlow("f").add(wt.Echo("echo")), store={"value": [1, "a"]}, engine_conf=conf
        )
        engine.run()
        assert engine.storage.fetch("echo") == [1, "a"]
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_engine_conf_may_be_just_the_engine_name_and_must_be_one_or_a_dict() -> None:
    engine = engines.load(LinearFlow("f").add(wt.Noop("n")), engine_conf="serial")
    engine.run()
    with pytest.raises(InvalidFlowError, match="engine_conf must be"):
        engines.load(LinearFlow("f").add(wt.Noop("n")), engine_conf=3)


PROGRAM = textwrap.dedent(
    """
    import threading
    from flowkit import engines, task
    from flowkit.engines.worker_based import worker
    from flowkit.patterns import linear_flow

    class Square(task.Task):
        def execute(self, x):
            return x * x

    conf = {"exchange": "fk-main-EXCHANGE", "transport": "memory"}
    w = worker.Worker(topic="t1", tasks=["%s:Square" % __name__], **conf)
    threading.Thread(target=w.run, daemon=True).start()
    w.wait()
    flow = linear_flow.Flow("f").add(Square("sq", provides="y"))
    engine = engines.load(flow, store={"x": 7}, engine="worker-based", topics=["t1"], **conf)
    engine.run()
    print("y =", engine.storage.fetch("y"))
    w.stop()
    """
)


def test_a_program_serves_its_own_task_classes_to_its_worker_threads(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM.replace("EXCHANGE", uuid.uuid4().hex[:8]))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["y = 49"]
