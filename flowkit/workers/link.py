"""One kombu connection, driven by one thread, that reconnects by itself.

Why one owning thread: kombu connections and channels are not thread-safe, and a worker's task threads
must publish events and acknowledge requests while the connection is busy waiting for messages. So
exactly one thread calls :meth:`Link.pump` (read and dispatch messages), :meth:`Link.publish` and
:meth:`Link.ack`; other threads hand it work and call :meth:`Link.wake`, which ends its wait at once.

Why select() on the socket instead of ``drain_events(timeout)``: waking a blocked read from another
thread is otherwise impossible, and polling with short timeouts would add its period to every round
trip. Transports without a socket (``memory://``) are polled instead.

Why :meth:`Link.cork`: every publish and ack is otherwise one ``sendall`` (one system call, and on a
loaded machine a wake-up of the broker each); the owner corks while it sends a batch (the engine its
requests between two waits, the worker its answers and acks of one loop) and :meth:`Link.flush` sends them
with one write. A corked message is as sent as one the kernel holds in its socket buffer: both are lost
with the connection, and the same recovery covers both.

Why :mod:`flowkit.workers.frames`: on AMQP over TCP (py-amqp), a publish and an ack are written as
their frames directly, byte for byte what kombu would write, and a delivery held whole in the read-ahead
buffer is read from its frames into the kombu message kombu would hand on, each at a fraction of kombu's
and py-amqp's cost per message (see there); other transports, other frames and any property those
frames do not cover go through kombu and py-amqp as before.

Reconnection uses kombu's ``ensure_connection`` retry policy; each new connection bumps
:attr:`Link.generation`, so that deliveries from a dead channel are never acknowledged on a new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp.channel  # type: ignore[import-untyped]
import amqp.transport  # type: ignore[import-untyped]
import kombu
from kombu.message import Message
from kombu.transport.pyamqp import Message as _Message
from kombu.utils.url import maybe_sanitize_url

from flowkit.exceptions import WorkerError
from flowkit.workers import frames
from flowkit.workers.protocol import CONTENT_TYPE

LOG = logging.getLogger(__name__)

Setup = Callable[[Any], None]
"""Declares entities and starts consumers on a fresh channel (called after every (re)connect)."""

HEARTBEAT_S = 10.0  # AMQP heartbeats: a broker that vanished without closing the socket is noticed
FRAMES_PER_PUMP = 256  # then return, so the owner can flush what its other threads queued
READ_CHUNK = 16384  # bytes asked of the socket at once (see _try_connect)
POLL_S = 0.002  # transports without a socket are polled this often
CLOSE_TIMEOUT_S = 2.0
RAW_PROPERTIES = frozenset({"correlation_id", "reply_to", "expiration"})
"""The publish properties :func:`flowkit.workers.frames.publish` writes; others go through kombu."""


class Link:
    """A connection to the broker with a producer, and consumers that ``setup`` starts."""

    def __init__(
        self, url: str, setup: Setup, transport_options: dict[str, Any] | None = None, name: str = "link"
    ) -> None:
        self.url = url
        self.where = str(maybe_sanitize_url(url))
        """The broker URL without its password, for messages."""
        self.name = name
        self._setup = setup
        self._options = dict(transport_options or {})
        self._conn: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False  # a wake is in the pipe, not yet read: another one adds nothing
        self._errors: tuple[type[BaseException], ...] = (OSError,)
        self._last_beat = 0.0
        self._next_attempt = 0.0
        self._failures = 0
        self._error = ""
        self.down_since: float | None = None
        """``time.monotonic()`` when the connection was lost; None while connected."""
        self._corked: bytearray | None = None  # writes held until flush()
        self._transport: Any = None  # py-amqp's transport, whose writes cork() holds back
        self._own_write: Any = None
        self._reader: Any = None  # py-amqp's TCP transport, when it reads ahead (see _try_connect)
        self._raw: amqp.channel.Channel | None = None  # py-amqp's channel, when frames are written here
        self.generation = 0
        """Bumped on every (re)connect attempt, before its consumers start (see :meth:`ack`)."""
        self.owner: threading.Lock | None = None
        """When set: a lock the owner thread holds but while :meth:`pump` waits on the socket, so that
        another thread may take it and use the link meanwhile (see ``Worker._post``)."""

    @property
    def connected(self) -> bool:
        return self._producer is not None

    # -- connecting ---------------------------------------------------------------------------------

    def connect(self, timeout: float) -> None:
        """Connect (retrying for up to ``timeout`` seconds) and run ``setup``; WorkerError if it cannot."""
        deadline = time.monotonic() + timeout
        while not self._try_connect(max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise WorkerError(f"{self.name}: cannot connect to the broker at {self.where}: {self._error}")
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _try_connect(self, timeout: float) -> bool:
        self._drop()
        conn = kombu.Connection(
            self.url,
            connect_timeout=max(0.5, min(timeout, 5.0)),
            heartbeat=HEARTBEAT_S,
            transport_options=self._options,
        )
        try:
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0.2, interval_max=1.0, timeout=timeout or 0.5
            )
            self._errors = (OSError, *conn.connection_errors, *conn.channel_errors)
            channel = conn.channel()
            # Bumped before setup: starting consumers may deliver at once (a backlog, or requests
            # redelivered after a cut), and those deliveries belong to this channel. Tagged with the
            # old generation, their acks would be skipped and each would hold a prefetch slot forever.
            self.generation += 1
            self._setup(channel)
            self._producer = kombu.Producer(channel, auto_declare=False)
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.release()
            self._producer = None
            self._failures += 1
            self._error = f"{type(exc).__name__}: {exc}"
            log = LOG.warning if self._failures in (1, 10) or self._failures % 100 == 0 else LOG.debug
            log(
                "%s: broker at %s unreachable (%s attempt(s)): %s", self.name, self.where, self._failures, exc
            )
            return False
        self._conn = conn
        amqp_conn = getattr(conn, "connection", None)
        self._sock = getattr(amqp_conn, "sock", None) if conn.transport.driver_type == "amqp" else None
        transport = getattr(amqp_conn, "transport", None) if self._sock is not None else None
        self._transport = transport if callable(getattr(transport, "_write", None)) else None
        self._reader = None
        if isinstance(transport, amqp.transport.TCPTransport) and isinstance(
            getattr(transport, "_read_buffer", None), bytes
        ):
            # py-amqp reads a frame with two recv() calls of exactly its size: read what has come
            # instead (it keeps the rest for the next frame), and read frames on while some are held.
            recv = transport.sock.recv
            transport._quick_recv = lambda n: recv(max(n, READ_CHUNK))
            self._reader = transport
        raw = self._producer.channel
        self._raw = raw if self._transport is not None and isinstance(raw, amqp.channel.Channel) else None
        _no_read_in_publish(amqp_conn)
        self._last_beat = time.monotonic()
        if self._failures:
            LOG.warning("%s: reconnected to %s", self.name, self.where)
        self._failures = 0
        self.down_since = None
        return True

    def _drop(self, graceful: bool = True) -> None:
        """Forget the connection: closed politely (bounded in time), or, once lost, just let go."""
        if graceful:
            self.flush()
        self._uncork()
        conn, sock = self._conn, self._sock
        self._conn, self._producer, self._sock, self._transport = None, None, None, None
        self._reader = self._raw = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if not graceful:
                conn.collect()
                return
            if sock is not None:
                sock.settimeout(CLOSE_TIMEOUT_S)  # a silent broker must not hold up a close forever
            conn.release()

    def _lost(self, exc: BaseException) -> None:
        LOG.warning("%s: connection to %s lost: %s: %s", self.name, self.where, type(exc).__name__, exc)
        self._drop(graceful=False)
        self.down_since = time.monotonic()
        self._next_attempt = 0.0

    def delete_queue(self, name: str, consumer: kombu.Consumer | None = None) -> None:
        """Stop ``consumer`` and delete queue ``name``, best effort (with the broker gone, the queue's
        own expiry does it). The consumer goes first: a queue deleted under it leaves the connection
        unable to close cleanly."""
        if not self.flush():  # a cancel waits for the broker's answer: nothing may stay corked
            return
        producer = self._producer
        if producer is None:
            return
        try:
            if consumer is not None:
                consumer.cancel()
            producer.channel.queue_delete(name)
        except self._errors as exc:
            self._lost(exc)

    def close(self) -> None:
        """Close the connection (consumers and exclusive queues go with it) and the wake pipe."""
        self._drop()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- sending --------------------------------------------------------------------------------------

    def publish(self, body: bytes, exchange: str, routing_key: str, **properties: Any) -> bool:
        """Send one JSON message; False (and the link reconnects later) when the connection is down."""
        producer = self._producer
        if producer is None:
            return False
        raw = self._raw
        if raw is not None and raw.is_open and type(body) is bytes and properties.keys() <= RAW_PROPERTIES:
            conn = raw.connection
            try:
                data = frames.publish(
                    raw.channel_id, exchange, routing_key, body, conn.frame_max, **properties
                )
            except ValueError:  # a name too long for AMQP: kombu's route raises it as before
                pass
            else:
                return self._write(conn, data)
        try:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=1,
                retry=False,
                **properties,
            )
        except self._errors as exc:
            self._lost(exc)
            return False
        return True

    def ack(self, message: Message, generation: int, reject: bool = False) -> None:
        """Acknowledge (or reject without requeue) a delivery, if its channel is still the live one."""
        if generation != self.generation or self._producer is None:
            return  # the channel it came on is gone; the broker has requeued it already
        raw = self._raw
        if (
            not reject
            and raw is not None
            and message.channel is raw
            and raw.is_open
            and not message.acknowledged
        ):
            if self._write(raw.connection, frames.ack(raw.channel_id, message.delivery_tag)):
                message._state = "ACK"  # as kombu's ack marks it
            return
        try:
            message.reject(requeue=False) if reject else message.ack()
        except self._errors as exc:
            self._lost(exc)

    def _write(self, conn: Any, data: bytes) -> bool:
        """Write frames made here to the transport (held while corked); False when the link is lost."""
        try:
            self._transport.write(data)
        except self._errors as exc:
            self._lost(exc)
            return False
        conn.bytes_sent += 1  # as py-amqp's frame writer counts them: no heartbeat is due while we send
        return True

    def cork(self) -> None:
        """Hold back what is sent until :meth:`flush` (one write for all); no-op without a socket.

        Only the owner thread corks, and only around sends: a call that waits for the broker's answer
        (a queue declare, a consumer cancel) while corked would wait forever.
        """
        transport = self._transport
        if transport is None or self._corked is not None:
            return
        held = bytearray()
        self._corked = held
        self._own_write = transport.__dict__.get("_write")  # TCP: the socket's sendall; TLS: none
        transport._write = held.extend  # py-amqp hands a view of a reused buffer: extend copies it

    def _uncork(self) -> bytes:
        held, self._corked = self._corked, None
        transport = self._transport
        if held is None or transport is None:
            return b""
        if self._own_write is None:
            del transport._write  # back to the class's own (TLS)
        else:
            transport._write = self._own_write
        return bytes(held)

    def flush(self) -> bool:
        """Send what :meth:`cork` held back; False (and the link reconnects later) when that failed."""
        if self._corked is None:
            return True
        held = self._uncork()
        transport = self._transport
        if not held or transport is None:
            return True
        try:
            transport.write(held)
        except self._errors as exc:
            self._lost(exc)
            return False
        return True

    # -- receiving --------------------------------------------------------------------------------------

    def wake(self) -> None:
        """End the owner's current :meth:`pump` wait; safe from any thread.

        Only the first wake until the owner reads the pipe writes to it (a system call, and a
        wake-up of the owner, saved for every other task that finishes meanwhile). The owner clears
        the flag after it has read the pipe, and acts on what it was woken for after that: a wake that
        skipped its write saw the flag set before it was cleared, so what it was for is acted on. (The
        other order loses wakes: a write made between the clear and the read would be read with the
        flag left set, and every later wake would skip its write.)"""
        if self._woken:
            return
        self._woken = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def readable(self, timeout: float) -> bool:
        """Whether the owner has something to read (a frame, or a wake), waiting up to ``timeout``
        seconds for it; reads nothing (any thread: for one that watches while the owner is busy).
        Transports without a socket just wait, and say no."""
        sock = self._sock
        if sock is None:
            time.sleep(timeout)
            return False
        if self._buffered():
            return True
        watched: list[Any] = [sock, self._wake_r]
        try:
            ready, _, _ = select.select(watched, [], [], timeout)
        except (OSError, ValueError):  # closed by the owner meanwhile: let it see to that
            return True
        return bool(ready)

    def _read_wake(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._wake_r, 4096)
        self._woken = False

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for messages (or a wake) and dispatch them to the consumers.

        While disconnected, tries to reconnect instead (with back-off), within the same time budget.
        """
        if self._corked is not None and not self.flush():
            return
        if self._producer is None:
            self._reconnect(timeout)
            return
        conn = self._conn
        assert conn is not None
        try:
            now = time.monotonic()
            if now - self._last_beat >= HEARTBEAT_S / 4:
                self._last_beat = now
                conn.heartbeat_check(rate=4)
            if self._sock is None:
                with contextlib.suppress(socket.timeout):
                    conn.drain_events(timeout=min(timeout, POLL_S))
                return
            self._read(conn, timeout)
        except self._errors as exc:
            self._lost(exc)

    def _read(self, conn: kombu.Connection, timeout: float) -> None:
        sock = self._sock
        assert sock is not None
        if self._buffered():
            ready: list[Any] = [sock]
        else:
            watched: list[Any] = [sock, self._wake_r]
            owner = self.owner
            if owner is None:
                ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
            else:
                owner.release()
                try:
                    ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
                finally:
                    owner.acquire()
                if self._sock is not sock:  # lost by the thread that used it meanwhile
                    return
        if self._wake_r in ready:
            self._read_wake()
        if sock not in ready:
            return
        amqp_conn = conn.connection
        if self._reader is not None:
            self._read_ahead(amqp_conn, self._reader, sock)
            return
        for _ in range(FRAMES_PER_PUMP):
            # A frame held whole is read with no timeout: setting one costs two system calls.
            try:
                amqp_conn.blocking_read(timeout=None if self._frame_held() else 1.0)
            except TimeoutError:
                return
            if self._producer is None:
                return
            if not self._buffered() and not select.select([sock], [], [], 0)[0]:
                return

    def _read_ahead(self, amqp_conn: Any, reader: Any, sock: socket.socket) -> None:
        """Dispatch the frames that have come (TCP): the socket is read without blocking into the
        transport's buffer, and a frame is handed to py-amqp only once it is held whole.

        Why: py-amqp reads with a timeout, which it sets and unsets on the socket around every read
        (two system calls), and a frame that came in part would block the owner until the rest did.
        Here a read that finds nothing ends the round (one system call, as the select() it replaces),
        and the rest of a frame is waited for by the next :meth:`pump`'s select(). A read that came
        back short took all the socket held: the next one would find nothing (a system call per round
        spared; what comes later makes the next select() return)."""
        drained = False
        for _ in range(FRAMES_PER_PUMP):
            if not self._frame_held():
                if drained:
                    return
                try:
                    data = sock.recv(READ_CHUNK, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    return
                if not data:
                    raise ConnectionResetError("the broker closed the connection")
                reader._read_buffer += data
                drained = len(data) < READ_CHUNK
                continue
            raw = self._raw
            if raw is None or not self._deliver(amqp_conn, reader, raw):
                amqp_conn.blocking_read(timeout=None)  # from the buffer: no system call
            if self._producer is None:
                return

    def _deliver(self, amqp_conn: Any, reader: Any, raw: amqp.channel.Channel) -> bool:
        """Hand the delivery the read-ahead buffer starts with to its consumer's ``on_message``, read
        by :func:`flowkit.workers.frames.deliver` (a kombu message as kombu's route makes it, for a
        fraction of its cost); False when py-amqp must read what comes next (another frame, a delivery
        not held whole or with other properties, a consumer without ``on_message``)."""
        held = reader._read_buffer
        found = frames.deliver(held, raw.channel_id)
        if found is None or not raw.is_open or raw.is_closing:
            return False
        count, end, tag, delivery_tag, redelivered, exchange, routing_key, props, body = found
        consumer = getattr(raw.callbacks.get(tag), "__self__", None)
        if not isinstance(consumer, kombu.Consumer) or consumer.on_message is None:
            return False
        on_message = consumer.on_message
        reader._read_buffer = held[end:]
        amqp_conn.bytes_recv += count  # as py-amqp counts frames: the broker is heard from
        encoding = props.get("content_encoding")
        if encoding:
            with contextlib.suppress(Exception):  # as py-amqp: a body it cannot decode stays bytes
                body = body.decode(encoding)
        message = _Message.__new__(_Message)
        message._state, message.channel, message.delivery_tag = "RECEIVED", raw, delivery_tag
        message.content_type, message.content_encoding = props.get("content_type"), encoding
        message.delivery_info = {
            "consumer_tag": tag,
            "delivery_tag": delivery_tag,
            "redelivered": redelivered,
            "exchange": exchange,
            "routing_key": routing_key,
        }
        message.headers, message.properties, message.body = (
            props.get("application_headers") or {},
            props,
            body,
        )
        message._decoded_cache, message.accept, message.errors = None, consumer.accept, []
        on_message(message)
        return True

    def _frame_held(self) -> bool:
        """Whether a whole frame (7-byte header, payload, end byte) was read ahead already."""
        reader = self._reader
        if reader is None:
            return False
        held = reader._read_buffer
        return len(held) >= 7 and len(held) >= 8 + int.from_bytes(held[3:7], "big")

    def _buffered(self) -> bool:
        """Whether what was read (or, TLS, decrypted) holds a frame that select() on the socket cannot
        see. (TCP: a frame read in part is not: the rest makes the socket readable.)"""
        if self._reader is not None:
            return self._frame_held()
        pending = getattr(self._sock, "pending", None)
        return bool(pending is not None and pending())

    def _reconnect(self, timeout: float) -> None:
        now = time.monotonic()
        if now < self._next_attempt:
            self._sleep(min(timeout, self._next_attempt - now))
            return
        if not self._try_connect(min(max(timeout, 0.1), 2.0)):
            self._next_attempt = time.monotonic() + min(2.0, 0.1 * (2 ** min(self._failures, 5)))

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early on :meth:`wake`."""
        ready, _, _ = select.select([self._wake_r], [], [], max(0.0, seconds))
        if ready:
            self._read_wake()


def _no_read_in_publish(amqp_conn: Any) -> None:
    """Make py-amqp stop reading the socket inside every publish.

    py-amqp, when it told the broker it understands ``connection.blocked``, polls the socket before
    each publish (``drain_events(timeout=0)``: a timeout set and unset on the socket and a read, three
    system calls a message) to see such a notice early. Our owners read the socket on every
    :meth:`Link.pump` anyway, where a notice is handled like any frame, and a publish to a blocked
    broker waits in the socket buffer either way. Only this connection's copy of its properties is
    changed: the broker was told at connect and still sends the notices.
    """
    props = getattr(amqp_conn, "client_properties", None)
    if not isinstance(props, dict) or not isinstance(props.get("capabilities"), dict):
        return
    amqp_conn.client_properties = {
        **props,
        "capabilities": {**props["capabilities"], "connection.blocked": False},
    }
