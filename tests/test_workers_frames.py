"""The frames a link writes itself (``flowkit.workers.frames``) are byte for byte what kombu's route writes.

Both routes run on one real connection, corked, for random messages: names with non-ASCII text, every
combination of the optional properties, bodies from empty to several frames long; and a ``basic.ack``
against py-amqp's own. Then a message sent by the frames is received through kombu with its properties.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest

from flowkit.workers import frames
from flowkit.workers.link import Link

pytestmark = pytest.mark.rabbitmq

ALPHABET = "abcXYZ019._-/:é漢\U0001f600"


@pytest.fixture(name="link")
def link_fixture(rabbitmq_url: str) -> Iterator[Link]:
    link = Link(rabbitmq_url, lambda channel: None, name="test")
    link.connect(5.0)
    assert link._raw is not None, "AMQP over TCP: frames are written by the link"
    try:
        yield link
    finally:
        link.close()


def _both(link: Link, send: Any) -> tuple[bytes, bytes]:
    """What ``send()`` writes through the frames, and through kombu (the frames turned off)."""
    link.cork()
    send()
    ours = link._uncork()
    raw, link._raw = link._raw, None
    try:
        link.cork()
        send()
        theirs = link._uncork()
    finally:
        link._raw = raw
    return ours, theirs


def _text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, most)))


def test_a_publish_is_what_kombu_writes(link: Link) -> None:
    rng = random.Random(13)
    frame_max = link._conn.connection.frame_max  # type: ignore[union-attr]
    sizes = [0, 1, 200, frame_max - 100, frame_max - 8, frame_max, 2 * frame_max + 5]
    for n in range(300):
        size = (
            sizes[n] if n < len(sizes) else rng.choice([rng.randint(0, 400), rng.randint(0, 3 * frame_max)])
        )
        body = rng.randbytes(size)
        props: dict[str, Any] = {}
        if rng.random() < 0.6:
            props["correlation_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
        if rng.random() < 0.6:
            props["reply_to"] = _text(rng, 60)
        if rng.random() < 0.5:
            props["expiration"] = rng.choice([0.001, 1.5, 30, rng.uniform(0, 1e5)])
        exchange, key = _text(rng, 40), _text(rng, 60)
        ours, theirs = _both(link, lambda b=body, e=exchange, k=key, p=props: link.publish(b, e, k, **p))
        assert ours == theirs, (size, exchange, key, props)


def test_an_ack_is_what_py_amqp_writes(link: Link) -> None:
    channel = link._raw
    assert channel is not None
    for tag in (1, 2, 255, 65_536, 2**40 + 7, 2**64 - 1):
        link.cork()
        channel.basic_ack(tag)
        theirs = link._uncork()
        assert frames.ack(channel.channel_id, tag) == theirs


def test_a_name_too_long_for_a_frame_goes_the_kombu_way() -> None:
    with pytest.raises(ValueError):
        frames.publish(1, "", "k" * 256, b"{}", 131_072)


def test_a_message_sent_by_frames_arrives_with_its_properties(rabbitmq_url: str) -> None:
    queue_name = f"test-frames-{uuid.uuid4().hex}"
    got: list[Any] = []

    def setup(channel: Any) -> None:
        queue = kombu.Queue(queue_name, auto_delete=False, durable=False, no_declare=True)
        kombu.Consumer(channel, [queue], on_message=got.append, accept=["json"]).consume()

    with kombu.Connection(rabbitmq_url) as conn:
        kombu.Queue(queue_name, auto_delete=False, durable=False)(conn.channel()).declare()
    link = Link(rabbitmq_url, setup, name="test")
    link.connect(5.0)
    try:
        assert link._raw is not None
        assert link.publish(b'{"a": "\xc3\xa9"}', "", queue_name, correlation_id="c-1", reply_to="r-1")
        for _ in range(50):
            link.pump(0.1)
            if got:
                break
        assert len(got) == 1
        message = got[0]
        assert message.body == '{"a": "é"}'  # py-amqp decodes it by its content encoding
        assert message.content_type == "application/json"
        assert message.properties["correlation_id"] == "c-1"
        assert message.properties["reply_to"] == "r-1"
        link.ack(message, link.generation)
        assert message.acknowledged
    finally:
        link.close()
    with kombu.Connection(rabbitmq_url) as conn:  # acknowledged by the frame: not requeued at close
        channel = conn.channel()
        assert channel.queue_declare(queue_name, passive=True).message_count == 0
        channel.queue_delete(queue_name)


def _random_message(rng: random.Random, n: int, frame_max: int) -> Any:
    import amqp

    size = rng.choice([0, 1, 50, 300, frame_max - 200, frame_max + 10, 2 * frame_max])
    text = rng.random() < 0.7
    body: Any = _text(rng, size).encode() if text else rng.randbytes(size)
    props: dict[str, Any] = {}
    if rng.random() < 0.9:
        props["content_type"] = rng.choice(["application/json", "text/plain", _text(rng, 20)])
    if rng.random() < 0.8:
        props["content_encoding"] = rng.choice(["utf-8", "binary", "latin-1"])
    if rng.random() < 0.7:
        props["application_headers"] = {} if rng.random() < 0.7 else {"k": _text(rng, 10), "n": n}
    for key in ("delivery_mode", "priority"):
        if rng.random() < 0.6:
            props[key] = rng.choice([1, 2]) if key == "delivery_mode" else rng.randint(0, 9)
    for key in ("correlation_id", "reply_to"):
        if rng.random() < 0.6:
            props[key] = _text(rng, 40)
    if rng.random() < 0.3:
        props["expiration"] = str(rng.randint(60_000, 10**9))
    if rng.random() < 0.2:  # read by py-amqp: the frames here leave it to it
        props["message_id"] = _text(rng, 20)
    return amqp.Message(body, **props)


def _received(url: str, queue_name: str, messages: list[Any], fast: bool) -> list[Any]:
    import amqp

    got: list[Any] = []

    def setup(channel: Any) -> None:
        queue = kombu.Queue(queue_name, auto_delete=False, durable=False, no_declare=True)
        kombu.Consumer(channel, [queue], no_ack=True, on_message=got.append, accept=["json"]).consume()

    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        channel = conn.channel()
        for message in messages:
            channel.basic_publish(message, exchange="", routing_key=queue_name)
    link = Link(url, setup, name="test")
    link.connect(5.0)
    try:
        if not fast:
            link._raw = None  # kombu's route
        for _ in range(200):
            link.pump(0.1)
            if len(got) == len(messages):
                break
    finally:
        link.close()
    assert len(got) == len(messages)
    return got


def test_a_delivery_read_here_is_what_kombu_hands_on(
    rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_name = f"test-frames-{uuid.uuid4().hex}"
    with kombu.Connection(rabbitmq_url) as conn:
        kombu.Queue(queue_name, auto_delete=False, durable=False)(conn.channel()).declare()
    read_here = []
    deliver = frames.deliver

    def counted(buf: bytes, channel: int) -> Any:
        found = deliver(buf, channel)
        if found is not None:
            read_here.append(found[3])
        return found

    monkeypatch.setattr(frames, "deliver", counted)
    try:
        rng = random.Random(7)
        messages = [_random_message(rng, n, 131_072) for n in range(150)]
        ours = _received(rabbitmq_url, queue_name, messages, fast=True)
        theirs = _received(rabbitmq_url, queue_name, messages, fast=False)
    finally:
        with kombu.Connection(rabbitmq_url) as conn:
            conn.channel().queue_delete(queue_name)
    assert len(read_here) > 40, "many deliveries are read here (the rest: properties or sizes py-amqp reads)"
    for a, b in zip(ours, theirs, strict=True):
        assert type(a) is type(b)
        for field in (
            "body",
            "content_type",
            "content_encoding",
            "properties",
            "headers",
            "_state",
            "accept",
        ):
            assert getattr(a, field) == getattr(b, field), field
        assert type(a.body) is type(b.body)
        info = {k: v for k, v in a.delivery_info.items() if k not in ("delivery_tag", "consumer_tag")}
        assert info == {k: v for k, v in b.delivery_info.items() if k not in ("delivery_tag", "consumer_tag")}
        assert a.delivery_tag == a.delivery_info["delivery_tag"]
        assert not a.errors and not b.errors
