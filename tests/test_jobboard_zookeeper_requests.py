"""What one job leaves behind on the ZooKeeper board: claiming and consuming a job must not leave a watch
on a node that is gone (kazoo's DataWatch set an ``exists`` watch on the deleted job node, two more
requests per job and a watch per job kept by the server and the client: issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.exceptions import NotOwnerError
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


def _claim_reads(board: ZooKeeperJobBoard) -> list[str]:
    """Paths of the claim nodes ``board``'s client reads from now on."""
    read: list[str] = []
    client: Any = board._client
    call = client._call

    def counted(request: Any, async_object: Any) -> Any:
        path = getattr(request, "path", "")
        if type(request).__name__ == "GetData" and "/claims/" in path:
            read.append(path)
        return call(request, async_object)

    client._call = counted
    return read


def test_consume_of_an_untouched_claim_does_not_read_the_claim(zookeeper_hosts: str, zk_path: str) -> None:
    board = ZooKeeperJobBoard("test", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        job = board.post("j")
        board.claim(job, "c")
        read = _claim_reads(board)
        board.consume(job, "c")
        assert read == []
        assert board.job_count() == 0
    finally:
        board.close()


def test_consume_after_a_cancel_request_or_by_another_name_checks_the_claim(
    zookeeper_hosts: str, zk_path: str
) -> None:
    """A cancel request rewrites the job node after the claim: consume reads the claim's owner, and
    still consumes; a name that does not hold the claim is refused either way."""
    board = ZooKeeperJobBoard("test", zookeeper_hosts, zk_path, timeout=4)
    other = ZooKeeperJobBoard("other", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    other.connect()
    try:
        job = board.post("j")
        board.claim(job, "c")
        with pytest.raises(NotOwnerError):
            board.consume(job, "d")
        other.cancel(job.uuid, "stop")
        read = _claim_reads(board)
        board.consume(job, "c")
        assert read, "the claim was not checked"
        assert board.job_count() == 0
        second = board.post("k")
        board.claim(second, "c")
        with pytest.raises(NotOwnerError):
            other.consume(second, "c")  # same name, another board (session): not its claim
        board.consume(second, "c")
    finally:
        board.close()
        other.close()


def test_the_board_waits_on_its_socket_with_poll(zookeeper_hosts: str, zk_path: str) -> None:
    """Its own client's handler selects with ``poll`` (no selector made per call), and still works."""
    import selectors

    from flowkit.jobboard.backends._zookeeper_handler import PollHandler

    board = ZooKeeperJobBoard("test", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        handler: Any = board._client.handler
        assert isinstance(handler, PollHandler)
        made: list[str] = []
        epoll = selectors.EpollSelector.__init__

        def counted(self: Any) -> None:
            made.append("epoll")
            epoll(self)

        selectors.EpollSelector.__init__ = counted  # type: ignore[method-assign]
        try:
            job = board.post("j")
            board.claim(job, "c")
            board.consume(job, "c")
        finally:
            selectors.EpollSelector.__init__ = epoll  # type: ignore[method-assign]
        assert made == []
        assert board.job_count() == 0
    finally:
        board.close()
