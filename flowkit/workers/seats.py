"""How many of an engine's requests a topic may hold: the threads its live workers advertise, twice.

Why count at all: a request published to a busy topic would sit in its queue, blamed on nobody, while
the engine cannot tell a long wait from a dead worker. So the engine sends a topic only what its workers
can take, and keeps the rest itself (see :mod:`flowkit.workers.dispatcher`).

Why twice (:data:`PIPELINE`): with exactly one request per thread, a worker thread idles for an engine
round trip between two short tasks; one more queued per thread keeps it busy (measured: a third more
no-op tasks per second). A queued request waits at most for one task to end.

Why deeper (:data:`DEEP_PIPELINE`) where calls come back quick: every AMQP message costs the engine, the
worker and RabbitMQ about as much as a no-op call, and a topic's messages carry no more requests than it
has seats free in one round; four per thread let a round fill messages of several per thread (measured:
a quarter of the messages per task, two fifths less CPU per no-op task across engine, workers and
RabbitMQ). Only while no call of ours on the topic was announced running (a call or a wait in a
worker's backlog past 20 ms): there a queued request waits for tasks that take time, and its timeout
runs meanwhile, so such a topic keeps :data:`PIPELINE`.
"""

from __future__ import annotations

PIPELINE = 2
"""Requests in flight per usable worker thread: one running, one queued."""
DEEP_PIPELINE = 4
"""Requests in flight per usable worker thread on a topic whose calls come back quick (:attr:`Seats.deep`)."""


class Seats:
    """This engine's requests in flight, per topic and per (topic, task)."""

    def __init__(self) -> None:
        self._topic: dict[str, int] = {}
        self._task: dict[tuple[str, str], int] = {}
        self.deep: set[str] = set()
        """Topics whose calls come back quick: :data:`DEEP_PIPELINE` seats per thread, not
        :data:`PIPELINE`."""

    def free_topic(self, task: str, capacity: dict[str, int], threads: dict[str, int]) -> str | None:
        """The least loaded topic with a seat free for ``task``, or None.

        ``capacity``: topic -> usable threads serving ``task``; ``threads``: topic -> usable threads
        of all its workers. Both count: a worker's prefetch is one for all the task queues it serves.
        """
        best, best_load = None, 2.0
        deep = self.deep
        for topic, cap in capacity.items():
            depth = DEEP_PIPELINE if topic in deep else PIPELINE
            total = threads.get(topic, 0) * depth
            busy = self._topic.get(topic, 0)
            if busy >= total or self._task.get((topic, task), 0) >= cap * depth:
                continue
            load = busy / total
            if load < best_load:
                best, best_load = topic, load
        return best

    def take(self, topic: str, task: str) -> None:
        self._topic[topic] = self._topic.get(topic, 0) + 1
        key = (topic, task)
        self._task[key] = self._task.get(key, 0) + 1

    def give(self, topic: str, task: str) -> None:
        self._topic[topic] -= 1
        self._task[(topic, task)] -= 1

    def held(self, topic: str) -> int:
        """Requests of ours in flight on ``topic``."""
        return self._topic.get(topic, 0)
