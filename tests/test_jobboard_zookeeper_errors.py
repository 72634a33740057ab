"""What ZooKeeper refuses comes out of the board as a flowkit error naming the board and its path.

Before, kazoo's errors were matched by class name and the rest escaped as they were (a NoNodeError
from a board whose nodes were deleted, a ValueError for a path kazoo refuses), so a caller catching
``FlowkitError`` missed them. Each case here is caused for real against ZooKeeper; one test runs
every kazoo error class through the table.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable

import pytest
from kazoo import exceptions as kazoo_exceptions
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from flowkit.exceptions import FlowkitError, JobBoardConnectionError, JobBoardError
from flowkit.jobboard.backends._zookeeper_session import Session
from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

pytestmark = pytest.mark.zookeeper

KAZOO_ERRORS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(kazoo_exceptions, inspect.isclass)
        if issubclass(cls, kazoo_exceptions.KazooException)
    ),
    key=lambda cls: cls.__name__,
)

CONNECTION_ERRORS = {
    kazoo_exceptions.ConnectionClosedError,
    kazoo_exceptions.SessionExpiredError,
    kazoo_exceptions.ConnectionLoss,
    kazoo_exceptions.ConnectionDropped,
    kazoo_exceptions.SessionMovedError,
    kazoo_exceptions.ZookeeperStoppedError,
    kazoo_exceptions.OperationTimeoutError,
    kazoo_exceptions.RequestTimeoutError,
    KazooTimeoutError,
}


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError(f"{call} raised nothing")


def _flowkit(exc: BaseException, board_path: str, kind: type[FlowkitError] = JobBoardError) -> None:
    assert isinstance(exc, kind), f"{type(exc).__module__}.{type(exc).__name__} escaped: {exc}"
    assert "'errors'" in str(exc) and board_path in str(exc), str(exc)


@pytest.mark.parametrize(
    "kazoo_error", [*KAZOO_ERRORS, KazooTimeoutError, ValueError], ids=lambda c: c.__name__
)
def test_every_kazoo_error_maps_to_a_flowkit_error(kazoo_error: type[Exception]) -> None:
    session = Session("errors", "zk1:2181", "/boards/b", 4.0, None, False, object(), lambda *_: None)
    session.connected = True
    original = kazoo_error()

    def fail() -> None:
        with session.errors("post a job"):
            raise original

    exc = _raised(fail)
    _flowkit(exc, "zk1:2181/boards/b")
    assert exc.__cause__ is original and "could not post a job" in str(exc)
    # A connection error tells the caller (a conductor) to wait and retry; the rest are refusals.
    assert isinstance(exc, JobBoardConnectionError) == (kazoo_error in CONNECTION_ERRORS)


def test_a_board_path_under_an_ephemeral_node_is_refused(
    zookeeper_hosts: str, zk_path: str, zk_client: KazooClient
) -> None:
    zk_client.ensure_path(zk_path)
    zk_client.create(f"{zk_path}/ephemeral", ephemeral=True)
    board = ZooKeeperJobBoard("errors", zookeeper_hosts, f"{zk_path}/ephemeral/board", timeout=4)
    exc = _raised(board.connect)
    _flowkit(exc, f"{zk_path}/ephemeral/board")
    assert "ephemeral" in str(exc) and isinstance(
        exc.__cause__, kazoo_exceptions.NoChildrenForEphemeralsError
    )
    assert not board.connected


def test_a_path_kazoo_refuses_is_a_job_board_error(zookeeper_hosts: str, zk_path: str) -> None:
    board = ZooKeeperJobBoard("errors", zookeeper_hosts, f"{zk_path}/a/../b", timeout=4)
    _flowkit(_raised(board.connect), f"{zk_path}/a/../b")


def test_nodes_deleted_under_a_connected_board(
    zookeeper_hosts: str, zk_path: str, zk_client: KazooClient
) -> None:
    board = ZooKeeperJobBoard("errors", zookeeper_hosts, zk_path, timeout=4)
    board.connect()
    try:
        zk_client.delete(zk_path, recursive=True)
        calls: dict[str, Callable[[], object]] = {
            "post": lambda: board.post("j"),
            "iterjobs": lambda: list(board.iterjobs(ensure_fresh=True)),
            "set_aside_jobs": board.set_aside_jobs,
            "get_job": lambda: board.get_job("no-such-job"),
        }
        for what, call in calls.items():
            exc = _raised(call)
            _flowkit(exc, zk_path)
            assert isinstance(exc.__cause__, kazoo_exceptions.NoNodeError), what
    finally:
        board.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_closed_port_is_a_connection_error() -> None:
    board = ZooKeeperJobBoard("errors", f"127.0.0.1:{_closed_port()}", "/flowkit", timeout=1)
    exc = _raised(board.connect)
    assert isinstance(exc, JobBoardConnectionError), repr(exc)
    assert "'errors'" in str(exc) and "127.0.0.1" in str(exc)


def test_an_address_kazoo_cannot_parse_is_a_job_board_error() -> None:
    board = ZooKeeperJobBoard("errors", "127.0.0.1:not-a-port", "/flowkit", timeout=1)
    _flowkit(_raised(board.connect), "127.0.0.1:not-a-port/flowkit")
