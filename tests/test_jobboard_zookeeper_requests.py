"""What one job leaves behind on the ZooKeeper board: claiming and consuming a job must not leave a watch
on a node that is gone (kazoo's DataWatch set an ``exists`` watch on the deleted job node, two more
requests per job and a watch per job kept by the server and the client: issue 13)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowkit.exceptions import NotOwnerError, UnclaimableJobError
from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard
from tests.support.wait import wait_until
from tests.tcp_proxy import TcpProxy

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


def _requests(board: ZooKeeperJobBoard) -> list[str]:
    """``kind:path`` of every request ``board``'s client sends from now on."""
    sent: list[str] = []
    client: Any = board._client
    call = client._call

    def counted(request: Any, async_object: Any) -> Any:
        sent.append(f"{type(request).__name__}:{getattr(request, 'path', '')}")
        return call(request, async_object)

    client._call = counted
    return sent


def _claim_reads(sent: list[str]) -> list[str]:
    """The reads of claim nodes among the requests ``_requests`` recorded."""
    return [request for request in sent if request.startswith("GetData:") and "/claims/" in request]


def test_consume_of_an_untouched_claim_does_not_read_the_claim(zookeeper_hosts: str, zk_path: str) -> None:
    board = ZooKeeperJobBoard("test", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        job = board.post("j")
        board.claim(job, "c")
        sent = _requests(board)
        board.consume(job, "c")
        assert _claim_reads(sent) == []
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
        sent = _requests(board)
        board.consume(job, "c")
        assert _claim_reads(sent), "the claim was not checked"
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


def test_a_board_follows_the_others_without_listing(zookeeper_hosts: str, zk_path: str) -> None:
    """Jobs posted, claimed and consumed by another board cost a watching board one read per job (its
    record), no listing of the board (issue 13: every board relisted jobs/ and claims/ on each change)."""
    watcher = ZooKeeperJobBoard("watcher", zookeeper_hosts, zk_path, timeout=4)
    worker = ZooKeeperJobBoard("worker", zookeeper_hosts, zk_path, timeout=4)
    watcher.connect()
    worker.connect()
    try:
        assert watcher.job_count() == 0  # a board follows the tree from its first read
        sent = _requests(watcher)
        jobs = [worker.post(f"j{i}") for i in range(5)]
        wait_until(lambda: watcher.job_count(only_unclaimed=True) == 5, 5, "the watcher to see the posts")
        for job in jobs:
            worker.claim(job, "w")
        wait_until(lambda: watcher.job_count(only_unclaimed=True) == 0, 5, "the watcher to see the claims")
        for job in jobs:
            worker.consume(job, "w")
        wait_until(lambda: watcher.job_count() == 0, 5, "the watcher to see the consumes")
        assert sorted(sent) == sorted(f"GetData:{zk_path}/jobs/job-{j.sequence:010d}" for j in jobs)
    finally:
        watcher.close()
        worker.close()


def test_a_claim_is_one_request_and_a_parked_job_is_refused_without_one(
    zookeeper_hosts: str, zk_path: str
) -> None:
    """The copy knows the job's version and every park that wrote it: claiming sends the transaction
    alone, and a job parked elsewhere and not due is refused with no request at all."""
    board = ZooKeeperJobBoard("b", zookeeper_hosts, zk_path, timeout=4)
    other = ZooKeeperJobBoard("o", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    other.connect()
    try:
        free, parked = other.post("free"), other.post("parked")
        other.claim(parked, "o")
        other.park(parked, "o", wake_at=time.time() + 60)
        node = f"job-{parked.sequence:010d}"
        wait_until(lambda: board.job_count(only_unclaimed=True) == 1, 5, "the board to see both")
        wait_until(lambda: node in board._copy.waiting, 5, "the board to read the park")
        # the park also rewrote the job's record: its waiting node and the record are read apart
        wait_until(lambda: board._copy.versions.get(node) is not None, 5, "the board to read the record")
        # until its first listing is done the copy is not trusted and a claim reads (slow start-ups)
        wait_until(lambda: board._copy.trusted, 5, "the board's copy to be trusted")
        [job] = board.iterjobs(only_unclaimed=True)
        sent = _requests(board)
        with pytest.raises(UnclaimableJobError, match="parked"):
            board.claim(next(j for j in board.iterjobs() if j.uuid == parked.uuid), "b")
        assert sent == []
        board.claim(job, "b")
        assert [s.split(":")[0] for s in sent] == ["Transaction"]
        assert job.uuid == free.uuid and other.find_owner(job) == "b"
    finally:
        board.close()
        other.close()


def test_after_a_reconnect_the_board_hears_changes_again(zookeeper_hosts: str, zk_path: str) -> None:
    """The server forgets a connection's watches: the board adds them again and relists, so jobs
    posted while it was away and after it came back both reach ``wait``."""
    proxy = TcpProxy(("127.0.0.1", int(zookeeper_hosts.rsplit(":", 1)[1])))
    board = ZooKeeperJobBoard("cut", proxy.address, zk_path, timeout=4)
    other = ZooKeeperJobBoard("other", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    other.connect()
    try:
        # Follow before the cut (a board follows from its first read): the watches to lose are its.
        assert board.job_count() == 0
        proxy.cut()
        away = other.post("while away")
        proxy.restore()
        wait_until(lambda: board.job_count() == 1, 10, "the job posted while away")
        back = other.post("after")
        assert {j.uuid for j in board.wait(5)} >= {away.uuid}
        wait_until(lambda: board.job_count() == 2, 5, "the job posted after the reconnect")
        other.claim(back, "o")
        wait_until(lambda: board.job_count(only_unclaimed=True) == 1, 5, "the claim made after it")
        assert [j.uuid for j in board.iterjobs(only_unclaimed=True)] == [away.uuid]
    finally:
        board.close()
        other.close()
        proxy.close()


def test_without_persistent_watches_the_board_relists(
    zookeeper_hosts: str, zk_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server older than ZooKeeper 3.6 has no ``addWatch``: the board falls back to children watches,
    and still sees posts, claims, abandons and cancel requests."""
    from flowkit.jobboard.backends import _zookeeper_events

    monkeypatch.setattr(_zookeeper_events, "add_watch", lambda *args: False)
    board = ZooKeeperJobBoard("old", zookeeper_hosts, zk_path, timeout=4)
    other = ZooKeeperJobBoard("other", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    other.connect()
    try:
        assert not board._copy.events
        job = other.post("j")
        assert [j.uuid for j in board.wait(5)] == [job.uuid]
        board.claim(job, "a")
        wait_until(lambda: other.job_count(only_unclaimed=True) == 0, 5, "the claim to show")
        told: list[str] = []
        board.add_cancel_listener(lambda uuid, reason: told.append(reason))
        other.cancel(job.uuid, "stop")
        wait_until(lambda: told == ["stop"], 5, "the cancel request")
        board.abandon(job, "a", "later")
        [again] = other.wait(5)
        assert again.last_reason == "later" and again.attempts == 1
        other.claim(again, "o")
        other.consume(again, "o")
        wait_until(lambda: board.job_count() == 0, 5, "the consume to show")
    finally:
        board.close()
        other.close()


def test_the_poll_handler_answers_as_kazoos_select() -> None:
    """Readable, writable, both, hung up, nothing: the same lists as kazoo's own ``selector_select``."""
    import socket

    from kazoo.handlers.utils import selector_select

    from flowkit.jobboard.backends._zookeeper_handler import PollHandler

    handler = PollHandler()
    quiet, talker = socket.socketpair()
    hung, gone = socket.socketpair()
    gone.close()
    try:
        cases: list[tuple[list[Any], list[Any]]] = [
            ([quiet], []),
            ([], [quiet]),
            ([quiet], [quiet]),
            ([hung], []),
        ]
        for r, w in cases:
            assert handler.select(r, w, [], 0.01) == selector_select(r, w, [], 0.01)
        talker.send(b"x")
        cases_after = [([quiet], []), ([quiet], [quiet]), ([quiet, hung], []), ([], [hung])]
        for r, w in cases_after:
            assert handler.select(r, w, [], 0.01) == selector_select(r, w, [], 0.01)
        assert handler.select([quiet], [], [], 0.01) == ([quiet], [], [])
        with pytest.raises(ValueError):
            handler.select([quiet], [], [], -1)
    finally:
        for sock in (quiet, talker, hung):
            sock.close()


def test_claim_next_reads_only_the_head_of_the_board(
    zookeeper_hosts: str, zk_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claiming the next job takes one of the first jobs of the copy without listing the whole board
    (a listing of 1,000 jobs per claim cost about as much as the claim), in priority order."""
    board = ZooKeeperJobBoard("b", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        jobs = [board.post(f"j{i}") for i in range(20)]
        urgent = board.post("urgent", priority=2)
        listed: list[bool] = []
        listing = board._copy.listing
        monkeypatch.setattr(board._copy, "listing", lambda *a: listed.append(True) or listing(*a))
        first = board.claim_next("c")
        assert first is not None and first.uuid == urgent.uuid
        second = board.claim_next("c")
        assert second is not None and second.uuid in {j.uuid for j in jobs[:8]}
        assert listed == []
    finally:
        board.close()


def test_a_board_that_only_posts_hears_nothing_of_the_others(zookeeper_hosts: str, zk_path: str) -> None:
    """A board follows the tree from its first read, not from ``connect``: one that only posts sends
    one request per post and gets no watch event while others claim and consume (issue 13: a poster
    heard four events per job it posted); its first count then lists the board."""
    poster = ZooKeeperJobBoard("poster", zookeeper_hosts, zk_path, timeout=4)
    worker = ZooKeeperJobBoard("worker", zookeeper_hosts, zk_path, timeout=4)
    poster.connect()
    worker.connect()
    try:
        client: Any = poster._client
        heard: list[str] = []
        read_watch_event = client._connection._read_watch_event
        client._connection._read_watch_event = lambda buffer, offset: (
            heard.append("event"),
            read_watch_event(buffer, offset),
        )
        sent = _requests(poster)
        jobs = [poster.post(f"j{i}") for i in range(3)]
        assert [s.split(":")[0] for s in sent] == ["Create"] * 3
        for job in jobs:
            [claimed] = [j for j in worker.iterjobs(ensure_fresh=True) if j.uuid == job.uuid]
            worker.claim(claimed, "w")
            worker.consume(claimed, "w")
        last = worker.post("last")
        assert worker.job_count() == 1
        assert heard == [] and len(sent) == 3
        assert [j.uuid for j in poster.iterjobs()] == [last.uuid]  # its first read lists the board
        mine = poster.post("mine")
        assert poster.job_count() == 2 and {j.uuid for j in poster.iterjobs()} == {last.uuid, mine.uuid}
    finally:
        poster.close()
        worker.close()


def test_the_board_reads_and_writes_its_socket_before_waiting_on_it(
    zookeeper_hosts: str, zk_path: str
) -> None:
    """kazoo selects before every read and write; the board's own client selects only when the socket
    would block: a claim and a consume cost a handful of ``poll`` calls, not three per message."""
    from flowkit.jobboard.backends._zookeeper_handler import PollHandler

    board = ZooKeeperJobBoard("b", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        jobs = [board.post(f"j{i}") for i in range(20)]
        assert board.job_count() == 20
        polls: list[int] = []
        select = PollHandler.select

        def counted(self: Any, *args: Any) -> Any:
            polls.append(1)
            return select(self, *args)

        PollHandler.select = counted  # type: ignore[method-assign]
        try:
            for job in jobs:
                board.claim(job, "c")
                board.consume(job, "c")
        finally:
            PollHandler.select = select  # type: ignore[method-assign]
        # kazoo selects to write each request and three times per message read (the loop's, then before
        # its length and its body): 22 per claimed and consumed job here; the board's client 8 (the
        # loop's, and one per request when the connection thread is woken to send it)
        assert len(polls) <= 12 * len(jobs), len(polls)
        assert board.job_count() == 0
    finally:
        board.close()


def test_the_socket_shortcut_is_installed_only_on_the_kazoo_it_was_written_for() -> None:
    """kazoo's private ``_read``/``_write`` are replaced only where they take what ours are called with:
    another kazoo's connection keeps its own (and a TLS client always does)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from kazoo.protocol.connection import ConnectionHandler

    from flowkit.jobboard.backends import _zookeeper_socket as sock

    assert sock.fits(ConnectionHandler)  # the installed kazoo: the shortcut applies

    class Renamed:
        def _read(self, size: int, timeout: float) -> bytes:
            return b""

        def _write(self, msg: bytes, timeout: float) -> None:
            return None

        def _socket_error_handling(self) -> Any:
            return nullcontext()

    class WithoutErrorHandling:
        def _read(self, length: int, timeout: float) -> bytes:
            return b""

        def _write(self, msg: bytes, timeout: float) -> None:
            return None

    for other in (Renamed, WithoutErrorHandling):
        conn = other()
        assert not sock.fits(other)
        assert sock.install(SimpleNamespace(use_ssl=False, _connection=conn)) is False
        assert "_read" not in vars(conn)  # kazoo's own kept
    tls = Renamed()
    assert sock.install(SimpleNamespace(use_ssl=True, _connection=tls)) is False
