"""Where messages go: the exchanges and queues of one ``exchange`` name, declared alike by both sides.

- ``<exchange>`` (direct): requests, routed by ``<topic>.<task class path>`` to one queue per task and
  topic. Every worker serving that task on that topic consumes from it, so they share its load as
  competing consumers, and a request only ever reaches a worker that runs its task.
- ``<exchange>.notify`` (fanout): workers' heartbeats (``notify``); each engine binds its reply queue.
- ``<exchange>.discover`` (fanout): an engine's "announce yourselves"; each worker binds a private queue.

Exchanges are not auto-deleted: a worker heartbeating into an exchange that vanished with the last
engine would lose its channel. They hold no messages, so they cost nothing while idle; tests delete theirs.
Task queues expire :data:`QUEUE_EXPIRES_S` after their last consumer left, so that requests published
while a worker restarts wait for it. An engine's reply queue outlives a dropped connection (it expires
a while after the engine last used it; an engine deletes its own when it stops); a worker's discover
queue dies with its connection.
"""

from __future__ import annotations

from typing import Any

import kombu

QUEUE_EXPIRES_S = 60.0


def task_queue(exchange: str, topic: str, task: str) -> str:
    """The queue of one task on one topic."""
    return f"{exchange}.{topic}.{task}"


def task_key(topic: str, task: str) -> str:
    """The routing key of :func:`task_queue` on the request exchange."""
    return f"{topic}.{task}"


def notify_exchange(exchange: str) -> str:
    return f"{exchange}.notify"


def discover_exchange(exchange: str) -> str:
    return f"{exchange}.discover"


def exchanges(exchange: str) -> list[kombu.Exchange]:
    """The three exchanges of one name (requests, notify, discover)."""
    return [
        kombu.Exchange(exchange, "direct", durable=False),
        kombu.Exchange(notify_exchange(exchange), "fanout", durable=False),
        kombu.Exchange(discover_exchange(exchange), "fanout", durable=False),
    ]


def reply_queue(exchange: str, name: str, expires: float) -> kombu.Queue:
    """An engine's queue: replies to its requests, and every worker's notify.

    Not tied to the engine's connection: when RabbitMQ drops the engine for a while, replies that
    workers send meanwhile wait in it instead of vanishing with an exclusive queue (and the engine
    then failing calls that succeeded). It expires ``expires`` seconds after its engine last used it.
    """
    notify = kombu.Exchange(notify_exchange(exchange), "fanout", durable=False)
    return kombu.Queue(name, exchange=notify, auto_delete=False, durable=False, expires=expires)


def control_queue(exchange: str, worker_id: str) -> kombu.Queue:
    """A worker's queue for engines' ``discover`` messages."""
    discover = kombu.Exchange(discover_exchange(exchange), "fanout", durable=False)
    return kombu.Queue(
        f"{exchange}.worker.{worker_id}", exchange=discover, exclusive=True, auto_delete=True, durable=False
    )


def declare_exchanges(channel: Any, exchange: str) -> None:
    for ex in exchanges(exchange):
        ex(channel).declare()


def task_queues(exchange: str, topic: str, tasks: list[str]) -> list[kombu.Queue]:
    """The request queues a worker serving ``tasks`` on ``topic`` consumes from."""
    ex = kombu.Exchange(exchange, "direct", durable=False)
    return [
        kombu.Queue(
            task_queue(exchange, topic, task),
            exchange=ex,
            routing_key=task_key(topic, task),
            durable=False,
            auto_delete=False,
            expires=QUEUE_EXPIRES_S,
        )
        for task in tasks
    ]


def delete_exchanges(channel: Any, exchange: str) -> None:
    """Remove the exchanges of ``exchange`` (for tests and tear-down scripts)."""
    for ex in exchanges(exchange):
        ex(channel).delete()
