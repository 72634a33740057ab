"""Persistent recursive watches (ZooKeeper 3.6+ ``addWatch``), which kazoo 2.11 does not offer.

Why: with one-shot children watches every board relisted ``jobs/`` and ``claims/`` whenever any job
was posted, claimed or consumed, and read the record of every released claim: with K conductors each
job cost every board a listing of the whole board (issue 13). A persistent recursive watch on a
directory reports each node created, deleted or changed under it, with its path, for as long as the
connection lives: a board follows the others' claims and consumes without a single request.

kazoo knows neither the request nor events for paths it holds no watcher for, so this module adds the
request (:class:`AddWatch`) and routes the events of a client's connection to the handlers registered
here, in the connection's own thread: an event is handled before any response that follows it on the
connection, so whatever a board reads after a change already finds the change in its copy. Handlers
must be quick and must not wait for ZooKeeper. kazoo's own one-shot watchers on the same path still
get the event (the server sends one per connection).

The server forgets these watches when the connection drops (kazoo re-sends no watches: it tells its
own watchers to re-arm), so a board adds them again, then relists, after every reconnect.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("flowkit.jobboard")

CREATED, DELETED, CHANGED = 1, 2, 3
"""ZooKeeper's event types a recursive watch reports (NodeCreated, NodeDeleted, NodeDataChanged)."""

PERSISTENT_RECURSIVE = 1
ADD_WATCH = 106

EventHandler = Callable[[int, str], None]
"""Called as ``handler(event_type, path)`` (path without the client's chroot) in the connection thread."""


class AddWatch(namedtuple("AddWatch", "path mode")):
    """ZooKeeper's ``addWatch`` request, serialized as kazoo's own requests are."""

    type = ADD_WATCH

    def serialize(self) -> bytearray:
        from kazoo.protocol.serialization import int_struct, write_string

        out = bytearray(write_string(self.path))
        out.extend(int_struct.pack(self.mode))
        return out

    @classmethod
    def deserialize(cls, _buffer: bytes, _offset: int) -> bool:
        return True  # the answer has no body


def _routes(client: Any) -> dict[str, list[EventHandler]]:
    """The client's routes (directory path + "/" -> handlers), its connection patched once to use them.

    Several boards may share one client (and even one tree), hence a list per directory.
    """
    conn = client._connection
    routes: dict[str, list[EventHandler]] | None = getattr(conn, "_flowkit_routes", None)
    if routes is not None:
        return routes
    from kazoo.protocol.serialization import Watch

    routes = conn._flowkit_routes = {}
    original = conn._read_watch_event

    def read_watch_event(buffer: bytes, offset: int) -> None:
        watch, _ = Watch.deserialize(buffer, offset)
        path = client.unchroot(watch.path)
        for handler in routes.get(path.rpartition("/")[0] + "/", ()):
            try:
                handler(watch.type, path)
            except Exception:  # never the connection thread's problem
                LOG.exception("ZooKeeper event handler failed on %s", path)
        if watch.path in client._data_watchers or watch.path in client._child_watchers:
            original(buffer, offset)

    conn._read_watch_event = read_watch_event
    return routes


def route(client: Any, directory: str, handler: EventHandler) -> None:
    """Send the events on the nodes right under ``directory`` to ``handler`` (also)."""
    routes = _routes(client)
    routes[directory + "/"] = [*routes.get(directory + "/", ()), handler]


def unroute(client: Any, directory: str, handler: EventHandler) -> None:
    """Stop sending ``directory``'s events to ``handler``."""
    routes = _routes(client)
    left = [h for h in routes.get(directory + "/", ()) if h != handler]
    if left:
        routes[directory + "/"] = left
    else:
        routes.pop(directory + "/", None)


def add_watch(client: Any, directory: str, timeout: float) -> bool:
    """Ask the server for a persistent recursive watch on ``directory``; False when it refuses (before
    ZooKeeper 3.6 it knows no ``addWatch``: unverified here, no such server at hand, hence any refusal).
    Connection errors are raised, as kazoo raises them."""
    from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, KazooException, SessionExpiredError

    result = client.handler.async_result()
    client._call(AddWatch(client.chroot + directory, PERSISTENT_RECURSIVE), result)
    try:
        result.get(timeout=timeout)
    except (ConnectionLoss, ConnectionClosedError, SessionExpiredError):
        raise
    except KazooException as exc:  # UnimplementedError, BadArgumentsError, ...: whatever an old server says
        LOG.info("ZooKeeper has no persistent watches (%r): the board relists on each change", exc)
        return False
    return True
