"""What only the ZooKeeper board does: skip malformed nodes, digest ACLs, and the session rules."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from flowkit.exceptions import JobBoardConnectionError, JobBoardError, NotOwnerError, UnclaimableJobError
from flowkit.jobboard import ClaimEvent, JobBoard
from flowkit.jobboard import backends as boards
from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard
from tests.support.boards import zookeeper_tree
from tests.support.wait import wait_until
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.zookeeper


def _board(hosts: str, zk_path: str, **options: object) -> JobBoard:
    board = ZooKeeperJobBoard("test", hosts, zk_path, timeout=4, **options)  # type: ignore[arg-type]
    board.connect()
    return board


def test_malformed_nodes_are_skipped_with_one_warning(
    zookeeper_hosts: str, zk_path: str, zk_client: KazooClient, caplog: pytest.LogCaptureFixture
) -> None:
    board = _board(zookeeper_hosts, zk_path)
    try:
        good = board.post("good")
        bad = {
            f"{zk_path}/jobs/job-0000009997": b"[1, 2]",
            f"{zk_path}/jobs/job-0000009998": b"\xffnot json",
            f"{zk_path}/jobs/job-0000009999": b'{"uuid": "u", "name": 5}',
            f"{zk_path}/jobs/stray": b"x",
        }
        for node, data in bad.items():
            zk_client.create(node, data)
        with caplog.at_level(logging.WARNING, logger="flowkit.jobboard"):
            for _ in range(3):
                assert [j.uuid for j in board.iterjobs(ensure_fresh=True)] == [good.uuid]
            assert [j.uuid for j in board.wait(1)] == [good.uuid]
            fresh = _board(zookeeper_hosts, zk_path)
            assert [j.uuid for j in fresh.iterjobs()] == [good.uuid]
            fresh.close()
        messages = [r.getMessage() for r in caplog.records]
        for node in bad:
            assert sum(node in m for m in messages) == 2, (node, messages)  # once per board
        board.claim(good, "c")
        board.consume(good, "c")
    finally:
        board.close()


def test_digest_auth_and_acls(zookeeper_hosts: str, zk_client: KazooClient) -> None:
    with zookeeper_tree(zookeeper_hosts, auth=("alice", "s3cret")) as zk_path:
        board = boards.fetch("b", f"zookeeper://alice:s3cret@{zookeeper_hosts}{zk_path}?timeout=4")
        board.connect()
        try:
            job = board.post("secret")
            with pytest.raises(NoAuthError):
                zk_client.get(f"{zk_path}/jobs/job-{job.sequence:010d}")
            with pytest.raises(NoAuthError):
                zk_client.get_children(f"{zk_path}/jobs")
            intruder = boards.fetch("b", f"zookeeper://alice:wrong@{zookeeper_hosts}{zk_path}?timeout=4")
            with pytest.raises(JobBoardError, match="not allowed"):
                intruder.connect()
            board.claim(job, "c")
            board.consume(job, "c")
        finally:
            board.close()
        url = f"zookeeper://alice:s3cret@{zookeeper_hosts}{zk_path}/open?timeout=4&world_read=1"
        with boards.fetch("b", url) as readable:
            job = readable.post("public")
            data, _ = zk_client.get(f"{zk_path}/open/jobs/job-{job.sequence:010d}")
            assert b"public" in data


def test_suspended_session_hands_out_no_work_then_recovers(zookeeper_hosts: str, zk_path: str) -> None:
    proxy = TcpProxy(("127.0.0.1", int(zookeeper_hosts.rsplit(":", 1)[1])))
    board = _board(proxy.address, zk_path)
    events: list[ClaimEvent] = []
    board.add_claim_listener(lambda event, uuids: events.append(event))
    try:
        job, other = board.post("mine"), board.post("other")
        board.claim(job, "a")
        proxy.cut()
        wait_until(lambda: ClaimEvent.IN_DOUBT in events, 5, "IN_DOUBT")
        with pytest.raises(JobBoardConnectionError, match="suspended"):
            board.claim(other, "a")
        assert list(board.wait(0.3)) == []
        proxy.restore()
        wait_until(lambda: ClaimEvent.CONFIRMED in events, 5, "CONFIRMED")
        assert ClaimEvent.LOST not in events
        board.consume(job, "a")
        assert [j.uuid for j in board.wait(5)] == [other.uuid]
    finally:
        board.close()
        proxy.close()


def test_partition_tells_the_claimant_before_anyone_else_can_claim(
    zookeeper_hosts: str, zk_path: str
) -> None:
    """A silent partition (no RST): IN_DOUBT reaches the claimant before its session can expire and
    another conductor take the job; when the network returns the claimant hears LOST."""
    proxy = TcpProxy(("127.0.0.1", int(zookeeper_hosts.rsplit(":", 1)[1])))
    partitioned = _board(proxy.address, zk_path)
    other = _board(zookeeper_hosts, zk_path)
    seen: dict[ClaimEvent, float] = {}
    partitioned.add_claim_listener(lambda event, uuids: seen.setdefault(event, time.monotonic()))
    try:
        job = partitioned.post("j")
        partitioned.claim(job, "a")
        proxy.cut(blackhole=True)
        claimed_by_other = threading.Event()

        def take() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for candidate in other.wait(1):
                    try:
                        other.claim(candidate, "b")
                    except UnclaimableJobError:
                        continue  # still a's: the watch had not told us yet
                    claimed_by_other.set()
                    return

        cut_at = time.monotonic()
        threading.Thread(target=take, daemon=True).start()
        assert claimed_by_other.wait(20), "the other board never got the job"
        other_at = time.monotonic()
        assert ClaimEvent.IN_DOUBT in seen and seen[ClaimEvent.IN_DOUBT] < other_at
        assert other_at - cut_at < 4 + 2 + 1  # session timeout, ZooKeeper's tick rounding, slack
        proxy.restore()
        wait_until(lambda: ClaimEvent.LOST in seen, 10, "LOST")
        with pytest.raises(NotOwnerError):
            partitioned.consume(job, "a")
        other.consume(job, "b")
    finally:
        partitioned.close()
        other.close()
        proxy.close()


def test_a_session_lost_while_claiming_fails_the_claim(
    zookeeper_hosts: str, zk_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOST arriving between the claim's commit and its bookkeeping must not leave a claim we believe in."""
    from kazoo.protocol.states import KazooState

    from flowkit.jobboard.backends import _zookeeper_claiming as claiming

    zk = ZooKeeperJobBoard("test", zookeeper_hosts, zk_path, timeout=4)
    zk.connect()
    board: JobBoard = zk
    events: list[tuple[ClaimEvent, frozenset[str]]] = []
    board.add_claim_listener(lambda event, uuids: events.append((event, uuids)))
    try:
        job = board.post("racy")
        commit = claiming.commit

        def commit_then_lose(on: object, tx: object, lock_path: str) -> list[object]:
            results = commit(zk, tx, lock_path)
            zk._session._on_state(KazooState.LOST)  # as kazoo's thread would, in the worst moment
            return results

        monkeypatch.setattr(claiming, "commit", commit_then_lose)
        with pytest.raises(UnclaimableJobError, match="session"):
            board.claim(job, "c")
        monkeypatch.setattr(claiming, "commit", commit)
        zk._session._on_state(KazooState.CONNECTED)
        assert board.find_owner(job) is None  # the claim was released
        assert zk._held.uuids() == frozenset()
        board.claim(job, "c2")  # and someone can claim it
        board.consume(job, "c2")
    finally:
        board.close()


def test_the_fencing_token_is_the_claim_nodes_creation_zxid(
    zookeeper_hosts: str, zk_path: str, zk_client: KazooClient
) -> None:
    board = _board(zookeeper_hosts, zk_path)
    try:
        job = board.post("j")
        board.claim(job, "c")
        _, stat = zk_client.get(f"{zk_path}/claims/job-{job.sequence:010d}")
        assert job.fence == stat.czxid
    finally:
        board.close()


def test_an_older_watch_listing_does_not_hide_the_boards_own_post(
    zookeeper_hosts: str, zk_path: str, zk_client: KazooClient
) -> None:
    """A watch listing read just before a post lands after it: the post stays until ZooKeeper says it
    is gone (the listing is replayed here by hand, as the watch thread would deliver it)."""
    from flowkit.jobboard.backends import _zookeeper_listings as listings

    board = _board(zookeeper_hosts, zk_path)
    assert isinstance(board, ZooKeeperJobBoard)
    try:
        job = board.post("mine")
        copy = board._copy
        with copy.updating:  # the watch may not report the post in the meantime
            listings.update_jobs(copy, [])  # what the directory held before the post
            assert board.job_count() == 1 and [j.uuid for j in board.iterjobs()] == [job.uuid]
            zk_client.delete(f"{zk_path}/jobs/job-{job.sequence:010d}")  # gone before any listing showed it
            listings.update_jobs(copy, [])
            assert board.job_count() == 0 and list(board.iterjobs()) == []
    finally:
        board.close()
