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

kazoo 2.11's ``ConnectionHandler._read`` and ``_write`` are replaced on the board's own clients only
(never a client shared with the board, whose owner chose its handler), and only without TLS: an SSL
socket's reads need kazoo's ``pending`` and want-read handling.
"""

from __future__ import annotations

from typing import Any


def install(client: Any) -> None:
    """Give ``client``'s connection the reads and writes of this module (not with TLS)."""
    if client.use_ssl:
        return
    conn = client._connection
    conn._read = lambda length, timeout: read(conn, length, timeout)
    conn._write = lambda msg, timeout: write(conn, msg, timeout)


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
