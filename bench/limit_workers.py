"""The limit beside the worker suite: a raw kombu echo on the same RabbitMQ, no engine, no worker.

Why this floor: a remote task is at least one message to a worker and one reply back. Here 2 echo
processes (as the suite's 2 workers) each consume one queue and publish every message straight back to
its ``reply_to`` queue; the client sends JSON bodies of the size of a small request. Cases as the worker
suite's: ``linear`` = N sequential round trips (p50/p99, per task = total / N); ``unordered`` = N
messages with at most 8 in flight (the suite's 2 x 4 threads), throughput = N / total.

``python limit_workers.py --serve QUEUE`` is the echo process itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from _harness import emit, guarded, log
from kombu import Connection, Consumer, Exchange, Producer, Queue

URL = os.environ.get("FLOWKIT_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
IN_FLIGHT = 8
BODY = {"action": "execute", "task": "bench.Noop", "arguments": {}, "uuid": "x" * 36}


def serve(queue_name: str) -> int:
    """The echo process: every message goes back to its ``reply_to`` queue with its correlation id."""
    with Connection(URL) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(""), serializer="json")
        queue = Queue(queue_name, auto_delete=True)

        def echo(body: Any, message: Any) -> None:
            producer.publish(
                body,
                routing_key=message.properties["reply_to"],
                correlation_id=message.properties["correlation_id"],
            )
            message.ack()

        with Consumer(conn.channel(), [queue], callbacks=[echo], prefetch_count=IN_FLIGHT):
            print("ready", flush=True)
            while True:
                conn.drain_events()


class _Client:
    def __init__(self, conn: Connection, queues: list[str]) -> None:
        self.conn, self.queues, self.next = conn, queues, 0
        self.reply = Queue(f"limit-reply-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True)
        self.producer = Producer(conn.channel(), exchange=Exchange(""), serializer="json")
        self.pending = 0
        self.consumer = Consumer(conn.channel(), [self.reply], callbacks=[self._done], no_ack=True)
        self.consumer.consume()

    def _done(self, body: Any, message: Any) -> None:
        self.pending -= 1

    def send(self) -> None:
        self.next = (self.next + 1) % len(self.queues)
        self.producer.publish(
            BODY,
            routing_key=self.queues[self.next],
            reply_to=self.reply.name,
            correlation_id=uuid.uuid4().hex,
        )
        self.pending += 1

    def wait_below(self, count: int) -> None:
        while self.pending > count:
            self.conn.drain_events(timeout=30)


def _linear(client: _Client, n: int) -> dict[str, Any]:
    trips = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        client.send()
        client.wait_below(0)
        trips.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    trips.sort()
    return {
        "total_s": total,
        "per_task_us": total / n * 1e6,
        "tasks_per_s": n / total,
        "rt_p50_ms": trips[len(trips) // 2] * 1e3,
        "rt_p99_ms": trips[min(n - 1, int(n * 0.99))] * 1e3,
    }


def _unordered(client: _Client, n: int) -> dict[str, Any]:
    start = time.perf_counter()
    for _ in range(n):
        client.wait_below(IN_FLIGHT - 1)
        client.send()
    client.wait_below(0)
    total = time.perf_counter() - start
    return {"total_s": total, "per_task_us": total / n * 1e6, "tasks_per_s": n / total}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="raw kombu echo round trips")
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cases", default="unordered,linear")
    p.add_argument("--sizes", default="1000")
    p.add_argument("--rt-sizes", default="200")
    p.add_argument("--repeat", type=int, default=3, help="accepted; each figure is one run of N")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver")
    a = p.parse_args(argv)
    if a.serve:
        return serve(a.serve)
    queues = [f"limit-echo-{uuid.uuid4().hex[:8]}" for _ in range(a.workers)]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve", q], stdout=subprocess.PIPE, text=True)
        for q in queues
    ]
    results: dict[str, Any] = {}
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with Connection(URL) as conn:
            client = _Client(conn, queues)
            _unordered(client, 50)  # untimed warm-up
            for case in (c for c in a.cases.split(",") if c):
                run, text = (_linear, a.rt_sizes) if case == "linear" else (_unordered, a.sizes)
                results[case] = {
                    str(n): guarded(f"echo {case} n={n}", lambda n=n, r=run: r(client, n))
                    for n in (int(x) for x in text.split(",") if x)
                }
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    log(f"limit_workers: {results}")
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
