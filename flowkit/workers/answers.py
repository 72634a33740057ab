"""What a worker answered lately, so that an answer a broker cut may have swallowed is sent again.

Replies are published without publisher confirms (they would cost a round trip each). When the
connection drops, the last replies written to the socket may never have reached RabbitMQ, and the
acknowledgement that followed each of them neither: the broker then hands the request out again, and
the engine, missing the reply, would fail a call that succeeded. So the worker keeps every answer it
sent within :data:`RESEND_WINDOW_S` (long enough for a silent, blackholed connection to be declared
dead by AMQP heartbeats) and, after reconnecting, sends them all again before anything else.
Engines ignore answers to requests they no longer wait for, so a second copy is harmless; and a
redelivered copy of a request answered here is answered again with the same reply, not refused.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from flowkit.workers.link import HEARTBEAT_S

RESEND_WINDOW_S = 2 * HEARTBEAT_S + 5.0


class RecentAnswers:
    """Replies sent within the window, oldest first: ``uuid -> (sent at, reply_to, body)``."""

    def __init__(self, window: float = RESEND_WINDOW_S) -> None:
        self.window = window
        self._answers: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()

    def add(self, req_id: str, reply_to: str, body: bytes, now: float) -> None:
        answers = self._answers
        answers[req_id] = (now, reply_to, body)
        limit = now - self.window
        while answers:
            oldest = next(iter(answers.values()))
            if oldest[0] >= limit:
                break
            answers.popitem(last=False)

    def resent(self, now: float) -> None:
        """Every answer was just sent again: each is kept for a full window from now.

        Why: the window must count from when an answer was last sent, not from before a cut; after a
        long outage, an answer from just before it still matters to a redelivered copy that arrives now.
        """
        answers = self._answers
        for req_id, (_, reply_to, body) in answers.items():
            answers[req_id] = (now, reply_to, body)

    def get(self, req_id: str) -> tuple[str, bytes] | None:
        """``(reply_to, body)`` of the answer to ``req_id``, if it was sent within the window."""
        found = self._answers.get(req_id)
        return None if found is None else (found[1], found[2])

    def __iter__(self) -> Iterator[tuple[str, str, bytes]]:
        """``(uuid, reply_to, body)`` of every remembered answer, oldest first."""
        for req_id, (_, reply_to, body) in self._answers.items():
            yield req_id, reply_to, body

    def __len__(self) -> int:
        return len(self._answers)
