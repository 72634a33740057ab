"""The AMQP 0-9-1 frames of the two things a link sends per call: a ``basic.publish`` and a ``basic.ack``.

Why written here, not by kombu and py-amqp: a kombu ``Producer.publish`` of one small message costs
~20x the bytes it writes (kombu's argument handling, py-amqp's generic serializer walking a format
string for the method and for every property), and a call's round trip is two publishes and an ack,
each on the critical path (the engine's request, the worker's answer and its ack). The frames of these
messages never vary but for a few strings and numbers, so they are packed with one ``struct`` call
each. They are byte for byte what kombu's route writes for the same arguments (``tests/
test_workers_frames.py`` compares both on random input): the same properties (content type and
encoding, kombu's empty headers table, delivery mode 1, priority 0, then the optional correlation id,
reply-to and expiration in milliseconds), the body split at the connection's ``frame_max``.

Only the connection's owner thread writes them (see :class:`~flowkit.workers.link.Link`), through the
transport's ``write``, so a corked batch holds them as it holds py-amqp's.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["Deliver", "ack", "deliver", "publish"]

_FRAME_END = b"\xce"
_METHOD, _HEADER, _BODY = 1, 2, 3
_BASIC = 60
_PUBLISH, _ACK = 40, 80
# content_type, content_encoding, headers, delivery_mode, priority: always; then the optional ones.
_ALWAYS = 0xF800
_CORRELATION_ID, _REPLY_TO, _EXPIRATION = 0x0400, 0x0200, 0x0100
_JSON_PROPERTIES = b"\x10application/json\x05utf-8" + b"\x00\x00\x00\x00" + b"\x01\x00"
"""``application/json``, ``utf-8``, an empty headers table (kombu sends one), delivery mode 1, priority 0."""
_frame_head = struct.Struct(">BHI").pack
_header_head = struct.Struct(">HHQH").pack
_ack = struct.Struct(">BHIHHQB").pack


def _short(text: str) -> bytes:
    """A shortstr (length octet, UTF-8 as py-amqp encodes it); ValueError past 255 bytes."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > 255:
        raise ValueError(f"an AMQP short string holds up to 255 bytes, got {len(data)}")
    return bytes((len(data),)) + data


def publish(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    frame_max: int,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    expiration: float | None = None,
) -> bytes:
    """The frames of a ``basic.publish`` of JSON ``body`` (not mandatory, not immediate), as kombu's
    ``Producer.publish(body, exchange=..., routing_key=..., content_type="application/json",
    content_encoding="utf-8", delivery_mode=1, ...)`` writes them; ValueError when a name is too long."""
    method = b"\x00\x3c\x00\x28\x00\x00" + _short(exchange) + _short(routing_key) + b"\x00"
    flags = _ALWAYS
    props = [_JSON_PROPERTIES]
    if correlation_id is not None:
        flags |= _CORRELATION_ID
        props.append(_short(correlation_id))
    if reply_to is not None:
        flags |= _REPLY_TO
        props.append(_short(reply_to))
    if expiration is not None:
        flags |= _EXPIRATION
        props.append(_short(str(int(expiration * 1000))))
    size = len(body)
    header = _header_head(_BASIC, 0, size, flags) + b"".join(props)
    parts = [
        _frame_head(_METHOD, channel, len(method)),
        method,
        _FRAME_END,
        _frame_head(_HEADER, channel, len(header)),
        header,
        _FRAME_END,
    ]
    chunk = frame_max - 8
    for start in range(0, size, chunk):
        piece = body[start : start + chunk]
        parts += (_frame_head(_BODY, channel, len(piece)), piece, _FRAME_END)
    return b"".join(parts)


def ack(channel: int, delivery_tag: int) -> bytes:
    """The frame of a ``basic.ack`` of one delivery (not multiple)."""
    return _ack(_METHOD, channel, 13, _BASIC, _ACK, delivery_tag, 0) + _FRAME_END


# -- receiving -------------------------------------------------------------------------------------------

_head = struct.Struct(">BHI").unpack_from
_deliver_tail = struct.Struct(">QB").unpack_from
_content_head = struct.Struct(">HHQH").unpack_from
_DELIVER = b"\x00\x3c\x00\x3c"  # basic.deliver
_KNOWN_FLAGS = 0xFF00
"""The properties :func:`deliver` reads (content type to expiration); any other is left to py-amqp."""
_EMPTY_TABLE = b"\x00\x00\x00\x00"

Deliver = tuple[int, int, str, int, bool, str, str, dict[str, Any], Any]
"""``(frames, end, consumer_tag, delivery_tag, redelivered, exchange, routing_key, properties, body)``."""


def _read_short(buf: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + buf[at]
    return buf[at + 1 : end].decode("utf-8", "surrogatepass"), end


def deliver(buf: bytes, channel: int) -> Deliver | None:
    """The ``basic.deliver`` that ``buf`` starts with, when it is held whole (its method, header and body
    frames) on ``channel`` and carries only properties this reads (an empty headers table at most);
    None otherwise, and py-amqp reads it. ``properties`` are as py-amqp decodes them; ``frames`` is how
    many frames it took, ``end`` where it ends in ``buf``."""
    if len(buf) < 19 or buf[7:11] != _DELIVER:  # the method frame's head and the method's class and id
        return None
    kind, chan, size = _head(buf, 0)
    end = 8 + size
    if kind != _METHOD or chan != channel or len(buf) < end + 7 or buf[end - 1] != 0xCE:
        return None
    consumer_tag, at = _read_short(buf, 11)
    delivery_tag, redelivered = _deliver_tail(buf, at)
    exchange, at = _read_short(buf, at + 9)
    routing_key, _ = _read_short(buf, at)
    kind, chan, size = _head(buf, end)
    start, end = end + 7, end + 8 + size
    if kind != _HEADER or chan != channel or len(buf) < end or buf[end - 1] != 0xCE:
        return None
    class_id, _, body_size, flags = _content_head(buf, start)
    if class_id != _BASIC or flags & ~_KNOWN_FLAGS:
        return None
    props: dict[str, Any] = {}
    at = start + 14
    if flags & 0x8000:
        props["content_type"], at = _read_short(buf, at)
    if flags & 0x4000:
        props["content_encoding"], at = _read_short(buf, at)
    if flags & 0x2000:
        if buf[at : at + 4] != _EMPTY_TABLE:
            return None
        props["application_headers"] = {}
        at += 4
    if flags & 0x1000:
        props["delivery_mode"] = buf[at]
        at += 1
    if flags & 0x0800:
        props["priority"] = buf[at]
        at += 1
    if flags & _CORRELATION_ID:
        props["correlation_id"], at = _read_short(buf, at)
    if flags & _REPLY_TO:
        props["reply_to"], at = _read_short(buf, at)
    if flags & _EXPIRATION:
        props["expiration"], at = _read_short(buf, at)
    frames, got, chunks = 2, 0, []
    while got < body_size:
        if len(buf) < end + 7:
            return None
        kind, chan, size = _head(buf, end)
        start, end = end + 7, end + 8 + size
        if kind != _BODY or chan != channel or len(buf) < end or buf[end - 1] != 0xCE:
            return None
        chunks.append(buf[start : end - 1])
        got += size
        frames += 1
    body: Any = chunks[0] if len(chunks) == 1 else b"".join(chunks) if chunks else ""  # py-amqp's empty body
    return frames, end, consumer_tag, delivery_tag, bool(redelivered & 1), exchange, routing_key, props, body
