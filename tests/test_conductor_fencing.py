"""Fencing with real conductor processes, on both boards (ZooKeeper, and the SQL board on PostgreSQL;
persistence on PostgreSQL): a conductor frozen (SIGSTOP) past its session timeout or lease while it
runs a job, then resumed (SIGCONT) after another conductor claimed the job, must not start another
atom, must not leave its late result in the database, and must neither consume nor abandon the job.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flowkit.engines.persistence import backend_for
from flowkit.jobboard import JobBoard, JobState
from tests.support.boards import ZOOKEEPER_SESSION_TIMEOUT
from tests.support.conductors import Conductors
from tests.support.wait import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLAIM_TIMEOUT = (
    ZOOKEEPER_SESSION_TIMEOUT  # the ZooKeeper session timeout (ZooKeeper's minimum) and the SQL lease
)
FROZEN = 8.0  # seconds A stays stopped: well past its claim, long enough for B to claim and resume
STEPS, DELAY = 8, 1.0


@pytest.fixture(params=[pytest.param("zookeeper", marks=pytest.mark.zookeeper), "sql"])
def board_url(request: pytest.FixtureRequest, postgres_url: str) -> str:
    """A fresh board whose claims end CLAIM_TIMEOUT after their owner stops (session or lease)."""
    if request.param == "sql":
        return f"{postgres_url}?lease={CLAIM_TIMEOUT:g}"
    url: str = request.getfixturevalue("zk_url")
    assert f"timeout={CLAIM_TIMEOUT:g}" in url
    return url


@pytest.fixture
def persistence_url(postgres_url: str) -> str:
    return postgres_url


def _trace(tmp_path: Path, key: str) -> list[tuple[str, str, int, float]]:
    path = tmp_path / f"{key}.log"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = line.split()
        if len(fields) == 4 and line.endswith(fields[3]):  # a line being written is read next time
            event, step, pid, when = fields
            out.append((event, step, int(pid), float(when)))
    return out


def test_a_conductor_resumed_after_losing_its_claim_cannot_act_on_the_job(
    board: JobBoard,
    board_url: str,
    board_name: str,
    conductors: Conductors,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    url, name = board_url, board_name
    store = {"job_key": "fenced", "trace_dir": str(tmp_path), "delay": DELAY}
    job = board.post_flow(
        "tests.job_flows:owned_steps", store=store, factory_kwargs={"n": STEPS}, name="fenced"
    )
    a = conductors.start("a", url, "--board-name", name)
    wait_until(lambda: "claimed job" in conductors.log("a"), 20, "a to claim the job")
    b = conductors.start("b", url, "--board-name", name)

    def starts_by_a() -> list[str]:
        return [s for e, s, p, _ in _trace(tmp_path, "fenced") if e == "start" and p == a.pid]

    before = len(starts_by_a())  # freeze a just after it starts its next step: it stops inside it
    wait_until(lambda: len(starts_by_a()) > before, 20, "a to start its next step")
    a.send_signal(signal.SIGSTOP)
    stopped_at = time.time()
    try:
        wait_until(lambda: "claimed job" in conductors.log("b"), CLAIM_TIMEOUT + 10, "b to claim the job")
        wait_until(
            lambda: any(p == b.pid for _, _, p, _ in _trace(tmp_path, "fenced")), 10, "b to start a step"
        )
        time.sleep(max(0.0, stopped_at + FROZEN - time.time()))
    finally:
        a.send_signal(signal.SIGCONT)
    resumed_at = time.time()
    wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the job to be consumed")
    # a hears of it through its refused write (or its board): it drops the job and goes on
    wait_until(
        lambda: any(w in conductors.log("a").lower() for w in ("newer claim", "lost")), 15, "a to drop it"
    )
    time.sleep(1.0)  # whatever a would still do after dropping it

    trace = _trace(tmp_path, "fenced")
    late_starts = [
        (s, when - stopped_at) for e, s, p, when in trace if e == "start" and p == a.pid and when > stopped_at
    ]
    assert late_starts == [], f"a started atoms after b claimed the job: {late_starts}"
    with backend_for(postgres_url).get_connection() as conn:
        saved = conn.get_flow_detail(job.flow_uuid or "")
    assert saved.state.value == "SUCCESS"
    started_by_b = {s for e, s, p, _ in trace if e == "start" and p == b.pid}
    frozen_in = starts_by_a()[before]
    assert frozen_in in started_by_b  # a was inside it when it froze: b ran it again
    results = {ad.name: ad.results for ad in saved}
    for step, result in results.items():
        owner = b.pid if step in started_by_b else a.pid
        assert result == f"{step}@{owner}", f"{step}: saved {result!r}, not {owner}'s (a={a.pid}, b={b.pid})"
    log_a = conductors.log("a")
    assert "consumed job" not in log_a and "abandoned job" not in log_a, log_a
    assert conductors.consumed(wait_for=[job.uuid]) == {job.uuid: 1}
    assert a.poll() is None and resumed_at > stopped_at  # a survived and still runs
    # and the conductors go on: the next job is run by one of them, once
    again = board.post_flow(
        "tests.job_flows:owned_steps",
        store={"job_key": "next", "trace_dir": str(tmp_path)},
        factory_kwargs={"n": 1},
        name="next",
    )
    wait_until(lambda: board.state_of(again) is JobState.COMPLETE, 20, "the next job")
    # the board shows the consume a moment before the conductor logs it
    wait_until(lambda: again.uuid in conductors.consumed(), 10, "the next job's consume logged")
    assert conductors.consumed() == {job.uuid: 1, again.uuid: 1}
    assert os.path.exists(tmp_path / "next.log")
