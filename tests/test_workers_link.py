"""The broker link's batching against the real RabbitMQ: a corked batch leaves only on flush, in order,
and frames read ahead of the socket are all delivered (select() on the socket cannot see them)."""

from __future__ import annotations

import os
import select
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest

from flowkit.workers.link import Link
from tests.support.wait import wait_until

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(name="queue_name")
def queue_name_fixture(rabbitmq_url: str) -> Iterator[str]:
    name = f"test-link-{uuid.uuid4().hex}"
    with kombu.Connection(rabbitmq_url) as conn:
        kombu.Queue(name, auto_delete=False, durable=False)(conn.channel()).declare()
        yield name
        conn.channel().queue_delete(name)


def _count(url: str, name: str) -> int:
    with kombu.Connection(url) as conn:
        return int(conn.channel().queue_declare(name, passive=True).message_count)


def test_corked_messages_leave_only_on_flush_in_order(rabbitmq_url: str, queue_name: str) -> None:
    link = Link(rabbitmq_url, lambda channel: None, name="test")
    link.connect(5.0)
    try:
        link.cork()
        for i in range(3):
            assert link.publish(f'"{i}"'.encode(), "", queue_name)
        assert _count(rabbitmq_url, queue_name) == 0  # held here, not at the broker
        assert link.flush()
        wait_until(lambda: _count(rabbitmq_url, queue_name) == 3, 5.0, "the flushed batch")
        assert link.flush()  # nothing corked: nothing to do
    finally:
        link.close()
    with kombu.Connection(rabbitmq_url) as conn:
        channel = conn.channel()
        got = [channel.basic_get(queue_name, no_ack=True).body for _ in range(3)]
    assert got == ['"0"', '"1"', '"2"']


def test_every_message_read_ahead_is_delivered(rabbitmq_url: str, queue_name: str) -> None:
    n = 40  # a burst: most of its frames arrive read ahead of the one asked for
    with kombu.Connection(rabbitmq_url) as conn:
        producer = kombu.Producer(conn.channel())
        for i in range(n):
            producer.publish(str(i), routing_key=queue_name, serializer="json")
    got: list[Any] = []

    def setup(channel: Any) -> None:
        queue = kombu.Queue(queue_name, auto_delete=False, durable=False, no_declare=True)
        kombu.Consumer(channel, [queue], no_ack=True, on_message=got.append, accept=["json"]).consume()

    link = Link(rabbitmq_url, setup, name="test")
    link.connect(5.0)
    try:
        # A few waits suffice: the broker sends the whole backlog at once, and the frames held after a
        # read must be read on without waiting for the socket (which has nothing more to say).
        for _ in range(5):
            link.pump(0.5)
            if len(got) == n:
                break
        assert len(got) == n  # before close(), which reads what is left by itself
    finally:
        link.close()
    assert [m.body for m in got] == [f'"{i}"' for i in range(n)]


def _pipe_readable(link: Link) -> bool:
    return bool(select.select([link._wake_r], [], [], 0)[0])


def test_a_wake_while_the_owner_reads_the_pipe_is_never_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task thread wakes the owner while the owner is reading the wake pipe: the wake skips its write
    (one is being read), and the next wake must write again, or the owner would sleep through it."""
    link = Link("memory://", lambda channel: None, name="test")
    try:
        link.wake()
        assert _pipe_readable(link)
        link.wake()  # one is in the pipe already: no second write needed
        real_read = os.read

        def read_while_woken(fd: int, n: int) -> bytes:
            link.wake()  # a task thread finishing a call at this very moment
            return real_read(fd, n)

        monkeypatch.setattr(os, "read", read_while_woken)
        link._read_wake()
        monkeypatch.setattr(os, "read", real_read)
        assert not _pipe_readable(link)  # the owner acts on what it was woken for next, so nothing is lost
        link.wake()
        assert _pipe_readable(link)  # and a later wake reaches it
    finally:
        link.close()
