"""What one job leaves behind on the ZooKeeper board: claiming and consuming a job must not leave a watch
on a node that is gone (kazoo's DataWatch set an ``exists`` watch on the deleted job node, two more
requests per job and a watch per job kept by the server and the client: issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

pytestmark = pytest.mark.zookeeper


def test_a_consumed_job_leaves_no_watch_behind(zookeeper_hosts: str, zk_path: str) -> None:
    board = ZooKeeperJobBoard("test", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        jobs = [board.post(f"j{i}") for i in range(3)]
        for job in jobs:
            board.claim(job, "c")
            board.consume(job, "c")
        client: Any = board._client
        for job in jobs:
            path = f"{zk_path}/jobs/job-{job.sequence:010d}"
            assert not client._data_watchers.get(path), f"a watch is left on {path}"
    finally:
        board.close()
