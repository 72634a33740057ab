"""TaskFlow's spellings that map onto flowkit's own: module paths and the executor name "threaded"."""

from __future__ import annotations

import importlib

import pytest

from flowkit import FunctorTask, UnorderedFlow, engines
from flowkit.exceptions import InvalidFlowError


@pytest.mark.parametrize("name", ["threaded", "thread", "threads"])
def test_taskflow_thread_executor_names_run_the_parallel_engine(name: str) -> None:
    flow = UnorderedFlow("u").add(
        FunctorTask(lambda: 1, name="a", provides="x"), FunctorTask(lambda: 2, name="b", provides="y")
    )
    engine = engines.load(flow, engine="parallel", executor=name, max_workers=2)
    engine.run()
    assert engine.storage.fetch_all() == {"x": 1, "y": 2}


def test_an_unknown_executor_name_is_still_refused() -> None:
    with pytest.raises(InvalidFlowError, match="unknown executor 'greenthreaded'"):
        engines.load(
            UnorderedFlow("u").add(FunctorTask(lambda: 1, name="a")),
            engine="parallel",
            executor="greenthreaded",
        )


def test_jobs_backends_is_the_job_board_backends_module() -> None:
    jobs = importlib.import_module("flowkit.jobs.backends")
    board = importlib.import_module("flowkit.jobboard.backends")
    assert jobs.fetch is board.fetch and jobs.SCHEMES == board.SCHEMES


def test_engines_worker_based_names_the_worker() -> None:
    pytest.importorskip("kombu")
    from flowkit.engines.worker_based import worker
    from flowkit.workers.worker import Worker

    assert worker.Worker is Worker
