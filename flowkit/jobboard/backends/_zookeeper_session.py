"""The ZooKeeper board's kazoo client: how it connects, what its errors mean, and its session's state.

The session decides what a claim is worth, so its state changes go straight to the board (from kazoo's
connection thread: flags and events only there, never a ZooKeeper call). SUSPENDED means the connection
is in trouble and the server may expire the session at any moment; the same session coming back means
the claims survived; LOST means the server has deleted them.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flowkit.exceptions import FlowkitError, JobBoardConnectionError, JobBoardError

SessionListener = Callable[[str, bool], None]
"""Called as ``listener(kazoo_state, same_session)``; ``same_session`` only matters for CONNECTED."""

# Bounded backoff: after an outage the board is back within a second of ZooKeeper (kazoo's default
# backoff grows to an hour).
_SHARED_START = threading.Lock()
"""Held while a board starts a client it shares with other boards (one start per client)."""

RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 2, "max_delay": 1.0}


ErrorRow = tuple[type[BaseException], type[JobBoardError], str]


@functools.cache
def error_table() -> tuple[ErrorRow, ...]:
    """kazoo's error classes -> (the flowkit error, what it means), the first match wins.

    A connection error (:class:`JobBoardConnectionError`) says the service is in trouble, not the
    request: callers such as the conductor wait and try again. Everything else ZooKeeper refuses is a
    :class:`JobBoardError`. Built on first use: kazoo is imported only by a ZooKeeper board.
    """
    from kazoo import exceptions as k
    from kazoo.handlers.threading import KazooTimeoutError

    lost = "lost the connection to ZooKeeper"
    return (
        (k.ConnectionClosedError, JobBoardConnectionError, "the connection to ZooKeeper is closed"),
        (k.SessionExpiredError, JobBoardConnectionError, "the ZooKeeper session expired"),
        (k.ConnectionLoss, JobBoardConnectionError, lost),
        (k.ConnectionDropped, JobBoardConnectionError, lost),
        (k.SessionMovedError, JobBoardConnectionError, lost),
        (k.ZookeeperStoppedError, JobBoardConnectionError, "the ZooKeeper client is stopped"),
        (k.OperationTimeoutError, JobBoardConnectionError, "ZooKeeper did not answer in time"),
        (k.RequestTimeoutError, JobBoardConnectionError, "ZooKeeper did not answer in time"),
        (KazooTimeoutError, JobBoardConnectionError, "ZooKeeper did not answer in time"),
        (k.NoAuthError, JobBoardError, "not allowed (the node's ACL refuses these credentials)"),
        (k.AuthFailedError, JobBoardError, "ZooKeeper refused the credentials"),
        (k.NoNodeError, JobBoardError, "a node of the board is missing (deleted under it?)"),
        (k.NodeExistsError, JobBoardError, "a node of the board exists already"),
        (k.NotEmptyError, JobBoardError, "a node of the board has children"),
        (k.BadVersionError, JobBoardError, "a node of the board changed meanwhile"),
        (
            k.NoChildrenForEphemeralsError,
            JobBoardError,
            "the board's path is under an ephemeral node, which can have no children",
        ),
        (k.InvalidACLError, JobBoardError, "ZooKeeper refused the ACL"),
        (k.QuotaExceededError, JobBoardError, "a ZooKeeper quota is exceeded"),
        (k.BadArgumentsError, JobBoardError, "ZooKeeper refused the request's arguments"),
        (ValueError, JobBoardError, "kazoo refused the path or address"),
        (k.KazooException, JobBoardError, "ZooKeeper refused the request"),
    )


class Session:
    """One kazoo client (the board's own, or one shared with it) and what its session is doing."""

    def __init__(
        self,
        board: str,
        hosts: str,
        path: str,
        timeout: float,
        auth: tuple[str, str] | None,
        world_read: bool,
        client: Any,
        listener: SessionListener,
    ) -> None:
        self.board, self.hosts, self.path, self.timeout = board, hosts, path, timeout
        self._auth, self._world_read = auth, world_read
        self.client: Any = client
        self.own_client = client is None
        self._listener = listener
        self.connected = False
        self.suspended = False
        self._last_session = -1  # the session id last seen connected (kazoo forgets it while suspended)

    def acl(self) -> list[Any] | None:
        """With credentials: all rights to that user (and read to the world with ``world_read``)."""
        if self._auth is None:
            return None
        from kazoo.security import ACL, Id, Permissions, make_digest_acl

        acl = [make_digest_acl(self._auth[0], self._auth[1], all=True)]
        if self._world_read:
            acl.append(ACL(Permissions.READ, Id("world", "anyone")))
        return acl

    def start(self) -> None:
        if self.client is None:
            try:
                self.client = self._new_client()
            except Exception as exc:  # an address kazoo cannot parse
                raise self.translate(exc, "connect") from exc
        if self.own_client:
            self._start_client()
        else:
            # A shared client is started here if its owner has not yet (as TaskFlow's boards do), and
            # left running on stop(): stopping it stays the owner's business. Boards sharing one
            # client may connect from several threads at once: one of them starts it.
            with _SHARED_START:
                if not self.client.connected:
                    self._start_client()
        self.connected, self.suspended = True, False
        self._last_session = self.session_id()
        self.client.add_listener(self._on_state)

    def _start_client(self) -> None:
        from kazoo.handlers.threading import KazooTimeoutError

        try:
            self.client.start(timeout=self.timeout)
        except KazooTimeoutError as exc:
            self._discard()
            raise JobBoardConnectionError(
                f"board {self.board!r}: cannot reach ZooKeeper at {self.hosts} within {self.timeout:g}s"
            ) from exc
        except Exception as exc:
            self._discard()
            raise self.translate(exc, "connect") from exc

    def _new_client(self) -> Any:
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        from flowkit.jobboard.backends import _zookeeper_socket
        from flowkit.jobboard.backends._zookeeper_handler import PollHandler

        client = KazooClient(
            hosts=self.hosts,
            timeout=self.timeout,
            auth_data=[("digest", f"{self._auth[0]}:{self._auth[1]}")] if self._auth else None,
            default_acl=self.acl(),
            connection_retry=KazooRetry(**RETRY),
            command_retry=KazooRetry(**RETRY),
            handler=PollHandler(),
        )
        _zookeeper_socket.install(client)  # recv and send first, select only when they would block
        return client

    def _discard(self) -> None:
        """Drop a client that never started (its threads and sockets with it); a shared one is
        stopped (its owner may start it again) but kept."""
        self.client.stop()
        if self.own_client:
            self.client.close()
            self.client = None

    def stop(self) -> None:
        self.connected = False
        client = self.client
        client.remove_listener(self._on_state)
        if self.own_client:
            client.stop()
            client.close()
            self.client = None

    def session_id(self) -> int:
        client_id = self.client.client_id
        return int(client_id[0]) if client_id else -1

    def _on_state(self, state: str) -> None:
        from kazoo.protocol.states import KazooState

        same = False
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self.suspended = True
        elif state == KazooState.CONNECTED:
            previous, self._last_session = self._last_session, self.session_id()
            same = self.suspended and previous == self._last_session
            self.suspended = False
        self._listener(state, same)

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn kazoo's errors into flowkit's, naming the board and what it was doing.

        flowkit's own errors raised inside pass through; every other error of a kazoo call (its own
        classes, and the ValueError it raises for a path it refuses) goes through :func:`translate`.
        """
        if not self.connected or self.client is None:
            raise JobBoardConnectionError(f"board {self.board!r} is not connected (call connect())")
        try:
            yield
        except FlowkitError:
            raise
        except Exception as exc:
            raise self.translate(exc, what) from exc

    def translate(self, exc: BaseException, what: str) -> JobBoardError:
        """The flowkit error for kazoo's ``exc`` (see :func:`error_table`), naming board, place and task."""
        flowkit_class, meaning = next(
            ((cls, meaning) for kazoo_class, cls, meaning in error_table() if isinstance(exc, kazoo_class)),
            (JobBoardError, "unexpected error"),
        )
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        where = f"board {self.board!r} at ZooKeeper {self.hosts}{self.path}"
        return flowkit_class(f"{where}: could not {what}: {meaning} ({detail})")

    def usable(self, what: str) -> None:
        """Raise unless the session is healthy: a suspended board hands out no work."""
        if self.suspended:
            raise JobBoardConnectionError(
                f"board {self.board!r}: connection to ZooKeeper at {self.hosts} is suspended; cannot {what}"
            )
