"""The ZooKeeper board's kazoo client: how it connects, what its errors mean, and its session's state.

The session decides what a claim is worth, so its state changes go straight to the board (from kazoo's
connection thread: flags and events only there, never a ZooKeeper call). SUSPENDED means the connection
is in trouble and the server may expire the session at any moment; the same session coming back means
the claims survived; LOST means the server has deleted them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flowkit.exceptions import JobBoardConnectionError, JobBoardError

SessionListener = Callable[[str, bool], None]
"""Called as ``listener(kazoo_state, same_session)``; ``same_session`` only matters for CONNECTED."""

# Bounded backoff: after an outage the board is back within a second of ZooKeeper (kazoo's default
# backoff grows to an hour).
RETRY = {"max_tries": -1, "delay": 0.05, "backoff": 2, "max_delay": 1.0}


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
        from kazoo.client import KazooClient
        from kazoo.handlers.threading import KazooTimeoutError
        from kazoo.retry import KazooRetry

        if self.client is None:
            self.client = KazooClient(
                hosts=self.hosts,
                timeout=self.timeout,
                auth_data=[("digest", f"{self._auth[0]}:{self._auth[1]}")] if self._auth else None,
                default_acl=self.acl(),
                connection_retry=KazooRetry(**RETRY),
                command_retry=KazooRetry(**RETRY),
            )
        if self.own_client:
            try:
                self.client.start(timeout=self.timeout)
            except KazooTimeoutError as exc:
                self.client.stop()
                self.client.close()
                self.client = None
                raise JobBoardConnectionError(
                    f"board {self.board!r}: cannot reach ZooKeeper at {self.hosts} within {self.timeout:g}s"
                ) from exc
        self.connected, self.suspended = True, False
        self._last_session = self.session_id()
        self.client.add_listener(self._on_state)

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
        """Turn kazoo's errors into flowkit's, naming the board and what it was doing."""
        from kazoo.exceptions import ConnectionClosedError, KazooException, NoAuthError
        from kazoo.handlers.threading import KazooTimeoutError

        if not self.connected or self.client is None:
            raise JobBoardConnectionError(f"board {self.board!r} is not connected (call connect())")
        try:
            yield
        except NoAuthError as exc:
            raise JobBoardError(
                f"board {self.board!r} at {self.hosts}{self.path}: not allowed to {what}"
            ) from exc
        except (ConnectionClosedError, KazooTimeoutError) as exc:
            raise JobBoardConnectionError(
                f"board {self.board!r}: ZooKeeper at {self.hosts} unreachable, could not {what}"
            ) from exc
        except KazooException as exc:
            if type(exc).__name__ in ("ConnectionLoss", "SessionExpiredError", "OperationTimeoutError"):
                raise JobBoardConnectionError(
                    f"board {self.board!r}: lost ZooKeeper at {self.hosts} while trying to {what}"
                ) from exc
            raise

    def usable(self, what: str) -> None:
        """Raise unless the session is healthy: a suspended board hands out no work."""
        if self.suspended:
            raise JobBoardConnectionError(
                f"board {self.board!r}: connection to ZooKeeper at {self.hosts} is suspended; cannot {what}"
            )
