"""kazoo's socket reads and writes, trying the (non-blocking) socket first and waiting only when it
would block.

Why: kazoo waits on ``select`` before every ``recv`` and every ``send``: a message read is a select for
the loop, one before its length and one before its body, though the body nearly always came with the
length; a request sent is a select for writing, though a socket with room in its buffer is writable.
Every board hears every job's claim and consume (four or five watch events per job, issue 13), so
with K conductors those waits cost K times over: three ``poll`` calls and their Python around each
message, for a wait that almost never waits. Here ``recv`` and ``send`` go first and ``select`` is
called only when the socket says it would block (``BlockingIOError``), with kazoo's timeout, so a
silent server still times out as in kazoo.

kazoo 2.11's ``ConnectionHandler._read`` and ``_write`` (checked by their signatures: another
version's are left alone) are replaced on the board's own clients only
(never a client shared with the board, whose owner chose its handler), and only without TLS: an SSL
socket's reads need kazoo's ``pending`` and want-read handling.
"""

from __future__ import annotations

import inspect
from typing import Any


def install(client: Any) -> bool:
    """Give ``client``'s connection the reads and writes of this module; False, and kazoo's own are
    kept, with TLS or when the connection's are not the ones these replace (another kazoo version)."""
    conn = client._connection
    if client.use_ssl or not fits(type(conn)):
        return False
    conn._read = lambda length, timeout: read(conn, length, timeout)
    conn._write = lambda msg, timeout: write(conn, msg, timeout)
    return True


def fits(handler: type) -> bool:
    """Whether ``handler`` (kazoo's ``ConnectionHandler``) reads and writes as the kazoo this module
    was written against: ``_read(length, timeout)``, ``_write(msg, timeout)``, ``_socket_error_handling``."""
    try:
        read_params = list(inspect.signature(handler._read).parameters)  # type: ignore[attr-defined]
        write_params = list(inspect.signature(handler._write).parameters)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return (
        read_params == ["self", "length", "timeout"]
        and write_params == ["self", "msg", "timeout"]
        and callable(getattr(handler, "_socket_error_handling", None))
    )


def read(conn: Any, length: int, timeout: float) -> bytes:
    """``length`` bytes from ``conn``'s socket: kazoo's ``_read``, selecting only when it would block."""
    from kazoo.exceptions import ConnectionDropped

    parts = []
    remaining = length
    with conn._socket_error_handling():
        while remaining > 0:
            try:
                chunk = conn._socket.recv(remaining)
            except (BlockingIOError, InterruptedError):
                if not conn.handler.select([conn._socket], [], [], timeout)[0]:
                    raise conn.handler.timeout_exception("socket time-out during read") from None
                continue
            if chunk == b"":
                raise ConnectionDropped("socket connection broken")
            parts.append(chunk)
            remaining -= len(chunk)
    return b"".join(parts)


def write(conn: Any, msg: bytes, timeout: float) -> None:
    """Send ``msg`` on ``conn``'s socket: kazoo's ``_write``, selecting only when it would block."""
    from kazoo.exceptions import ConnectionDropped

    sent = 0
    view = memoryview(msg)
    with conn._socket_error_handling():
        while sent < len(msg):
            try:
                count = conn._socket.send(view[sent:])
            except (BlockingIOError, InterruptedError):
                if not conn.handler.select([], [conn._socket], [], timeout)[1]:
                    raise conn.handler.timeout_exception("socket time-out during write") from None
                continue
            if not count:
                raise ConnectionDropped("socket connection broken")
            sent += count
