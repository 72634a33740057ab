"""The worker: serves the task classes it was given to engines, over the broker, on a pool of threads.

One thread (the one that calls :meth:`Worker.run`) owns the connection; task threads hand it events
through an outbox and wake it. A request message is acknowledged after its replies were sent, so the
broker never hands a worker more messages than it has threads, and workers on one topic share the load
evenly. A message may be a ``requests`` batch (see :mod:`flowkit.workers.protocol`; engines send no more
to one than the smallest worker's threads, four times that where calls come back quick, see
:mod:`flowkit.workers.seats`): a worker still runs no more than ``threads`` calls at once,
the others wait their turn in its backlog (their timeouts run there too), a task thread that finishes a
call takes the next, and the answers to a batch's requests go back several to a ``results`` message.

A call that arrives alone in its message while nothing else runs, and has no timeout, runs on the loop's
own thread instead of a pool thread: handing it over would cost its round trip a wake-up of another
thread and the two threads trading the interpreter lock. The loop goes on meanwhile: as soon as
something comes for it, or the call has run a few milliseconds, a standby thread runs the loop's rounds
until the call returns (:mod:`flowkit.workers.standby`). It still counts as one of the ``threads``. A
call with a timeout always goes to the pool: it may be abandoned, and the loop's thread must not be the
one left running it.

At most once: when a worker dies, the broker gives its unacknowledged requests to another worker as
*redelivered*. Such a request may have run, or be half done; it is refused with a failure instead of
run again, and the engine's retry controller or revert decides what happens next. A worker only builds
task classes it was configured with; a message can name a class, never make the worker import one.

A request may carry a ``timeout``. Past it the worker abandons the call: it answers with
:class:`~flowkit.exceptions.AtomTimeout` (the engine has given up by then anyway) and logs it, and when
the call returns at last its result is discarded (and logged). What an abandoned call costs while it
runs is in :mod:`flowkit.workers.abandon`: the pool has ``threads`` spare threads for them.

A task whose action is ``async def`` runs on the worker's event loop (one thread, started with the first
such request), not on a pool thread; past its timeout it is cancelled there, so it is not abandoned and
costs no thread. The worker consumes the queues of task classes with an async action apart, with a
prefetch of ``max_async`` (the other queues keep a prefetch of ``threads``: the broker never hands it
more sync request messages than it has threads), and says so in its notifies (``async_slots``): engines
send requests for such classes against those slots, the others against the threads. A sync action of
such a class (say a plain ``revert``) runs on a pool thread as usual.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kombu

from flowkit.engines.aio import AsyncRunner
from flowkit.exceptions import (
    AtomTimeout,
    FlowkitError,
    InvalidMessageError,
    WorkerError,
)
from flowkit.failure import Failure
from flowkit.task import Task
from flowkit.workers import atom_log
from flowkit.workers import protocol as p
from flowkit.workers import topology as t
from flowkit.workers.abandon import Deadline, Delivery, Timeouts
from flowkit.workers.answers import RecentAnswers
from flowkit.workers.call import call_task, call_task_async, revert_extras
from flowkit.workers.link import Link
from flowkit.workers.options import broker_url
from flowkit.workers.standby import Standby
from flowkit.workers.tasks import resolve_tasks, task_path

LOG = logging.getLogger(__name__)

FLUSH_GRACE_S = 10.0  # on stop, how long finished replies may wait for a lost broker to come back
RESEND = "resend"  # outbox kind: an answer sent before a reconnect, sent again (see answers.py)
ANNOUNCE_AFTER_S = 0.02  # a task still running after this is announced with a ``running`` message
BATCH = 64
"""The most requests a worker takes in one ``requests`` message (engines send no more than its threads)."""
DEFAULT_WORKER_ASYNC = 100
"""Async requests a worker takes at once besides its threads, unless ``max_async`` says otherwise."""


class Worker:
    """Serves ``tasks`` on ``topic``: ``Worker(...).run()`` blocks until :meth:`stop`."""

    def __init__(
        self,
        transport: str | None = None,
        exchange: str = "flowkit",
        topic: str = "",
        tasks: Iterable[type[Task] | str] = (),
        threads: int = 4,
        heartbeat: float = 1.0,
        transport_options: dict[str, Any] | None = None,
        worker_id: str | None = None,
        max_async: int = DEFAULT_WORKER_ASYNC,
        *,
        url: str | None = None,
    ) -> None:
        """``transport`` is the broker URL; TaskFlow's keywords work too: ``url=`` the broker URL and
        ``transport=`` a kombu transport name (``Worker(transport="memory", exchange=..., topic=...,
        tasks=[...])``), see :func:`~flowkit.workers.options.broker_url`."""
        if threads < 1:
            raise WorkerError(f"a worker needs at least one thread, got {threads}")
        if isinstance(max_async, bool) or not isinstance(max_async, int) or max_async < 0:
            raise WorkerError(f"max_async must be an int >= 0, got {max_async!r}")
        self.max_async = max_async
        if not topic or not isinstance(topic, str):
            raise WorkerError(f"a worker needs a topic to serve on, got {topic!r}")
        transport = broker_url(transport, url)
        if not transport:
            raise WorkerError("a worker needs a broker: transport=<broker URL>, e.g. amqp://host//")
        self.exchange, self.topic, self.threads, self.heartbeat = exchange, topic, threads, float(heartbeat)
        self.started = time.time()
        self.tasks: dict[str, type[Task]] = {task_path(c): c for c in resolve_tasks(tasks)}
        if not self.tasks:
            raise WorkerError("a worker needs at least one task class to serve")
        self.id = worker_id or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._link = Link(transport, self._setup, transport_options, name=f"worker {self.id}")
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._inbox: deque[tuple[Any, Any, int]] = deque()  # (handler, delivery, link generation)
        self._announce: dict[str, tuple[float, str]] = {}  # uuid -> (when to say it runs, reply_to)
        self._jobs: dict[str, Delivery] = {}  # uuid -> the message it came in, until answered
        self._finished: set[str] = set()  # answered by their task thread, not yet sent
        # Sync calls received, not started: a ``requests`` batch may bring more than free threads.
        self._backlog: dict[str, tuple[type[Task], dict[str, Any], dict[str, Any], str, bool]] = {}
        self._on_pool: set[str] = set()  # calls that hold one of the ``threads`` (see _start_next)
        self._calls = threading.Lock()  # the backlog and _on_pool: task threads take calls too
        # Held by the loop's thread but while it waits for the broker: a task thread that takes it
        # then sends its answer itself (see _post); everything the loop does is done under it.
        self._owner = threading.Lock()
        self._link.owner = self._owner
        self._result_head = p.head(p.RESULT, worker=self.id)
        self._timeouts = Timeouts(spare=threads)
        self._aio = AsyncRunner(max(1, max_async), name="flowkit-worker-async")
        self._async_actions: dict[tuple[type[Task], str], bool] = {}
        self._answers = RecentAnswers()
        self._answered_generation = 0  # the link generation whose connection last got our answers
        self._flush_deadline: float | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._consumers: list[kombu.Consumer] = []
        self._stop = threading.Event()
        self._draining = False
        self._loop_thread = 0  # the ident of the thread in run()
        self._next_beat = 0.0
        self._inline: tuple[type[Task], dict[str, Any], dict[str, Any], str, bool] | None = None
        """A call the current round runs on the loop's thread (see :meth:`_run_inline`)."""
        self._inline_since: float | None = None  # when the loop's thread began the call it runs
        self._taken_over = False  # the standby runs the loop's rounds meanwhile
        self._standby_error: BaseException | None = None
        self._standby = Standby(
            lambda: self._inline_since, self._take_over, self._loop_has_work, name="flowkit-worker-standby"
        )
        self.ready = threading.Event()
        """Set once the worker has connected and announced itself."""

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until :meth:`run` has connected and announced the worker (TaskFlow's ``Worker.wait``);
        whether it had within ``timeout`` seconds (None: as long as it takes)."""
        return self.ready.wait(timeout)

    def stop(self) -> None:
        """Stop taking requests, finish the running ones, then let :meth:`run` return (any thread)."""
        self._stop.set()
        self._link.wake()

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop`: then drain (running tasks finish and are answered) and return."""
        LOG.info(
            "worker %s: serving %d task(s) on topic %r of %s with %d thread(s)",
            self.id,
            len(self.tasks),
            self.topic,
            self._link.where,
            self.threads,
        )
        # Twice the threads: the spare ones replace threads held by abandoned calls (module docstring).
        self._pool = ThreadPoolExecutor(2 * self.threads, thread_name_prefix="flowkit-worker")
        self._loop_thread = threading.get_ident()
        self._next_beat = 0.0
        self._owner.acquire()
        try:
            while self._round():
                if self._standby_error is not None:
                    raise self._standby_error
        finally:
            # Abandoned calls may never return: do not wait for them (the process may then exit).
            hung = bool(self._timeouts.running)
            self._link.owner = None
            self._owner.release()  # task threads that end from now on find the link closed, or closing
            self._link.wake()  # a standby in the middle of a round ends it
            self._standby.close()
            self._pool.shutdown(wait=not hung, cancel_futures=hung)
            self._aio.stop()
            with self._owner:
                self._link.close()
            LOG.info("worker %s: stopped", self.id)

    def _round(self) -> bool:
        """One round of the loop (any thread holding ``_owner``: the loop's, or the standby's while the
        loop's runs a call); False when the worker has drained and stops."""
        if self._stop.is_set() and not self._draining:
            self._start_draining()
            self._next_beat = 0.0
        if self._link.connected and self._link.generation != self._answered_generation:
            self._reconnected()
        self._link.cork()  # one write for what this round sends; pump() flushes it
        self._drain_inbox()
        self._flush()
        if self._backlog:
            self._start_next()
        now = time.monotonic()
        next_deadline = self._abandon_due(now) if self._timeouts.watching else None
        if self._draining and self._drained(now):
            return False
        next_beat = self._next_beat
        if now >= next_beat and self._link.connected:
            self._notify(t.notify_exchange(self.exchange), "")
            next_beat = self._next_beat = now + self.heartbeat
            if not self.ready.is_set():
                LOG.info("worker %s: ready", self.id)
                self.ready.set()
        if self._inline is not None:  # taken by this round on the loop's thread: run it now
            self._link.flush()
            self._run_inline()
            return True
        wake_at = min(next_beat, self._announce_due(now) or next_beat, next_deadline or next_beat)
        if self._inbox:  # publishing read these: act on them before waiting for more
            wake_at = now
        self._link.pump(max(0.0, wake_at - now) if self._link.connected else 0.5)
        return True

    def _run_inline(self) -> None:
        """Run the call this round took on the loop's own thread (see :mod:`flowkit.workers.standby`),
        with ``_owner`` let go meanwhile: the call's answer is sent as a task thread sends it, and the
        standby may run the loop's rounds until the call returns."""
        call, self._inline = self._inline, None
        assert call is not None
        self._inline_since = time.monotonic()
        self._standby.arm()
        self._owner.release()
        try:
            self._call(*call, interruptible=True)
        finally:
            self._inline_since = None
            if self._taken_over:
                self._link.wake()  # the standby waits in its round: end it
            self._owner.acquire()
            self._taken_over = False

    def _loop_has_work(self, timeout: float) -> bool:
        """Whether something waits for the loop (a message, a wake, a request read already), waiting up
        to ``timeout`` for it; for the standby while the loop's thread runs a call (any thread)."""
        return bool(self._inbox) or self._link.readable(timeout)

    def _take_over(self, since: float) -> None:
        """The standby's turn: the loop's rounds, while the call that began at ``since`` runs."""
        self._taken_over = True  # before it waits for ``_owner``: the call's end then wakes its round
        with self._owner:
            try:
                while self._inline_since == since and self._round():
                    pass
            except BaseException as exc:  # the loop's own thread raises it, as if it had run the round
                self._standby_error = exc

    def _setup(self, channel: Any) -> None:
        t.declare_exchanges(channel, self.exchange)
        served_async = {path for path, cls in self.tasks.items() if self.max_async and self._async_class(cls)}
        self._consumers = []
        # A per-consumer prefetch (basic.qos, global=False, applies to the consumers started after it):
        # sync queues get at most ``threads`` requests at once, async ones at most ``max_async``.
        for paths, prefetch in (
            (sorted(set(self.tasks) - served_async), self.threads),
            (sorted(served_async), self.max_async),
        ):
            if not paths:
                continue
            queues = t.task_queues(self.exchange, self.topic, paths)
            consumer = kombu.Consumer(channel, queues, on_message=self._on_request, accept=["json"])
            consumer.qos(prefetch_count=prefetch, apply_global=False)
            if not self._draining:
                consumer.consume()
            self._consumers.append(consumer)
        control = t.control_queue(self.exchange, self.id)
        kombu.Consumer(
            channel, [control], no_ack=True, on_message=self._on_control, accept=["json"]
        ).consume()

    def _reconnected(self) -> None:
        """A new connection: first of all, send again what the lost one may have swallowed."""
        first = self._answered_generation == 0
        self._answered_generation = self._link.generation
        if first or not len(self._answers):
            return
        LOG.info(
            "worker %s: sending %d recent answer(s) again after reconnecting", self.id, len(self._answers)
        )
        resend = [(RESEND, req_id, reply_to, body) for req_id, reply_to, body in self._answers]
        self._outbox.extendleft(reversed(resend))
        self._answers.resent(time.monotonic())

    def _drained(self, now: float) -> bool:
        """Every request answered; or every task done and the broker gone for longer than the grace."""
        if not self._jobs and not self._outbox:
            return True
        if len(self._finished) < len(self._jobs):
            return False  # a task is still running
        if self._flush_deadline is None:
            self._flush_deadline = now + FLUSH_GRACE_S
        if now <= self._flush_deadline:
            return False
        LOG.warning(
            "worker %s: %d answer(s) could not be sent: the broker is unreachable", self.id, len(self._jobs)
        )
        return True

    def _start_draining(self) -> None:
        LOG.info("worker %s: stopping; %d request(s) still running", self.id, len(self._jobs))
        self._draining = True
        for consumer in self._consumers if self._link.connected else ():
            with contextlib.suppress(Exception):  # deliveries until cancel-ok still reach _on_request
                consumer.cancel()

    def _notify(self, exchange: str, routing_key: str) -> None:
        tasks = [] if self._draining else sorted(self.tasks)
        self._link.publish(
            p.encode(
                p.NOTIFY,
                worker=self.id,
                topic=self.topic,
                tasks=tasks,
                threads=self.threads,
                heartbeat=self.heartbeat,
                running=sorted(self._jobs),
                stuck=self.stuck,
                async_slots=self.max_async,
                started=self.started,
                batch=BATCH,
            ),
            exchange,
            routing_key,
        )

    @property
    def in_flight(self) -> int:
        """Requests received and not answered yet (for metrics; read from any thread)."""
        return len(self._jobs)

    @property
    def broker_connected(self) -> bool:
        """Whether the connection to the broker is up now (for ``/healthz``)."""
        return bool(self._link.connected)

    @property
    def abandoned(self) -> int:
        """Calls abandoned after their timeout whose threads have not returned yet."""
        return self._timeouts.running

    @property
    def stuck(self) -> int:
        """Threads that abandoned calls hold beyond the spare ones: capacity lost until they return."""
        return self._timeouts.stuck

    def _abandon_due(self, now: float) -> float | None:
        """Abandon the calls past their timeout; when the next deadline is, or None."""
        due, next_at = self._timeouts.due(now)
        for req_id, deadline in due:
            if req_id in self._finished or req_id not in self._jobs:
                continue  # answered in time (the answer is on its way)
            self._abandon(req_id, deadline)
        return next_at

    def _abandon(self, req_id: str, deadline: Deadline) -> None:
        delivery = self._jobs.pop(req_id)
        self._announce.pop(req_id, None)
        error = AtomTimeout(deadline.atom, deadline.action, deadline.timeout, f"worker {self.id!r}")
        with self._calls:
            queued = self._backlog.pop(req_id, None)
        if queued is not None:  # never started: nothing keeps running
            self._release(delivery)
            LOG.warning(
                "worker %s: request %s (atom %r) timed out after %gs before a thread came free for it",
                self.id,
                req_id,
                deadline.atom,
                deadline.timeout,
            )
            self._reply_now(req_id, deadline.reply_to, Failure.from_exception(error))
            return
        if self._timeouts.abandon(req_id, delivery):
            with self._calls:
                self._on_pool.discard(req_id)  # on a spare thread: its place goes to the next call
            self._release(delivery)
        LOG.warning(
            "worker %s: abandoned request %s (atom %r) after its timeout of %gs; its thread cannot be "
            "killed and keeps running, its result will be discarded; %d abandoned call(s) running, "
            "%d of %d thread(s) lost to them",
            self.id,
            req_id,
            deadline.atom,
            deadline.timeout,
            self.abandoned,
            self.stuck,
            self.threads,
        )
        self._reply_now(req_id, deadline.reply_to, Failure.from_exception(error))

    def _discard_late(self, req_id: str) -> None:
        """An abandoned call returned at last: drop its result, give back the thread it held."""
        held = self._timeouts.returned(req_id)
        self._finished.discard(req_id)
        with self._calls:
            self._on_pool.discard(req_id)
        if held is not None:
            self._release(held)
        LOG.warning(
            "worker %s: abandoned request %s returned; its result was discarded (%d abandoned call(s) "
            "still running, %d of %d thread(s) lost to them)",
            self.id,
            req_id,
            self.abandoned,
            self.stuck,
            self.threads,
        )

    def _flush(self) -> None:
        """Send what the task threads queued, in order; on a lost connection keep the rest for later.

        ``running`` is announced by this thread (see :meth:`_announce_due`), held back for
        :data:`ANNOUNCE_AFTER_S` and dropped if the result comes first: most tasks are short, and the
        engine learns who runs a long one from it (or from any heartbeat, which lists every request this
        worker holds), so short tasks cost two messages, not three, and no encode for the third.
        """
        outbox, link = self._outbox, self._link
        batches: dict[str, list[tuple[Any, ...]]] = {}  # reply_to -> results to send in one message
        sent: list[tuple[str, str, bytes]] = []  # (uuid, reply_to, result message) answered
        while outbox:
            item = outbox[0]
            kind, req_id, reply_to = item[0], item[1], item[2]
            if req_id in self._timeouts:
                outbox.popleft()
                if kind in (p.RESULT, p.RESULTS):
                    self._discard_late(req_id)
                continue
            if kind == p.RESULTS:  # its request came in a batch: its engine takes batched results
                batches.setdefault(reply_to, []).append(outbox.popleft())
                continue
            body = self._result_head + item[3][1:] if kind == p.RESULT else item[3]
            if not link.publish(body, "", reply_to, correlation_id=req_id):
                break
            outbox.popleft()
            if kind == p.RESULT:
                sent.append((req_id, reply_to, body))
        else:
            for reply_to, results in batches.items():
                body = p.batch(p.RESULTS, [r[3] for r in results], worker=self.id)
                if not link.publish(body, "", reply_to):
                    break
                sent.extend((r[1], reply_to, self._result_head + r[3][1:]) for r in results)
                results.clear()
        unsent = [r for results in batches.values() for r in results]
        if unsent:  # the link is lost: they go first when it is back
            outbox.extendleft(reversed(unsent))
        if sent:
            self._answered(sent)

    def _answered(self, sent: list[tuple[str, str, bytes]]) -> None:
        """These answers were sent: remember them (see answers.py), let go of their messages."""
        now = time.monotonic()
        with self._calls:
            self._on_pool.difference_update(req_id for req_id, _, _ in sent)
        for req_id, reply_to, body in sent:
            self._announce.pop(req_id, None)
            self._finished.discard(req_id)
            self._timeouts.answered(req_id)
            self._answers.add(req_id, reply_to, body, now)
            self._release(self._jobs.pop(req_id))

    def _release(self, delivery: Delivery) -> None:
        """One request of ``delivery`` lets go of it; acknowledged when none holds it any more."""
        delivery.holds -= 1
        if delivery.holds <= 0:
            self._link.ack(delivery.message, delivery.generation)

    def _announce_due(self, now: float) -> float | None:
        """Send the ``running`` messages that are due; when the next one is, or None."""
        announce = self._announce
        while announce:
            req_id = next(iter(announce))
            when, reply_to = announce[req_id]
            if when > now:
                return when
            body = p.encode(p.RUNNING, uuid=req_id, worker=self.id)
            if not self._link.publish(body, "", reply_to, correlation_id=req_id):
                return None
            del announce[req_id]
        return None

    # -- receiving ------------------------------------------------------------------------------------

    def _on_control(self, message: Any) -> None:
        self._inbox.append((self._handle_control, message, self._link.generation))

    def _drain_inbox(self) -> None:
        """Act on what arrived. Consumers only queue: py-amqp also delivers inside ``publish``, and a
        handler that publishes from there would run in the middle of another handler."""
        inbox = self._inbox
        while inbox:
            handler, message, generation = inbox.popleft()
            handler(message, generation)

    def _handle_control(self, message: Any, generation: int) -> None:
        try:
            p.decode(message.body, message.content_type, (p.DISCOVER,))
        except InvalidMessageError as exc:
            LOG.warning("worker %s: rejected a control message: %s", self.id, exc)
            return
        reply_to = message.properties.get("reply_to")
        if isinstance(reply_to, str) and reply_to:
            # Answers first: a notify that no longer lists a request tells the engine its answer was
            # lost, so every answer waiting to go (say, sent again after a reconnect) must precede it.
            self._flush()
            self._notify("", reply_to)

    def _on_request(self, message: Any) -> None:
        self._inbox.append((self._guarded_request, message, self._link.generation))

    def _guarded_request(self, message: Any, generation: int) -> None:
        """A delivery on a task queue; nothing it carries may stop the worker."""
        try:
            self._handle_request(message, generation)
        except Exception:
            LOG.exception("worker %s: dropped a request that could not be handled", self.id)
            self._link.ack(message, generation, reject=True)

    def _handle_request(self, message: Any, generation: int) -> None:
        """A ``request``, or a ``requests`` batch: each of its requests is taken, refused or answered
        again apart, and the message is acknowledged once none of them holds it (see :meth:`_release`)."""
        props = message.properties
        reply_to, corr = props.get("reply_to"), props.get("correlation_id")
        data: Any = None
        try:
            data = p.decode(message.body, message.content_type, (p.REQUEST, p.REQUESTS))
            if not isinstance(reply_to, str) or not reply_to:
                raise InvalidMessageError("a request needs reply_to")
            batched = data["type"] == p.REQUESTS
            if batched:
                reqs = p.items(data)
            elif corr != data["uuid"]:
                raise InvalidMessageError("a request needs correlation_id equal to its uuid")
            else:
                reqs = [data]
            calls = [(req, revert_extras(req)) for req in reqs]
        except InvalidMessageError as exc:
            LOG.warning(
                "worker %s: rejected a message on %s: %s",
                self.id,
                message.delivery_info.get("routing_key"),
                exc,
            )
            self._link.ack(message, generation, reject=True)
            if isinstance(reply_to, str) and reply_to:
                for req_id in _uuids(data, corr):
                    self._reply_now(req_id, reply_to, Failure.from_exception(exc))
            return
        delivery = Delivery(message, generation)
        redelivered = bool(message.delivery_info.get("redelivered"))
        for req, extras in calls:
            self._take(req, extras, delivery, reply_to, redelivered, batched)
        if self._backlog:
            self._start_next(lone=len(calls) == 1)
        if not delivery.holds:
            self._link.ack(message, generation)

    def _take(
        self,
        req: dict[str, Any],
        extras: dict[str, Any],
        delivery: Delivery,
        reply_to: str,
        redelivered: bool,
        batched: bool,
    ) -> None:
        """Run one request (it holds ``delivery`` until answered), or answer it at once."""
        req_id = req["uuid"]
        LOG.debug(
            "worker %s: request %s: %s %s (redelivered: %s)",
            self.id,
            req_id,
            req["action"],
            req["atom"],
            redelivered,
        )
        held = self._jobs.get(req_id)
        if held is not None:  # our connection dropped while we ran it: answer this delivery
            if held is not delivery:  # (a batch naming one request twice holds it once)
                self._jobs[req_id] = delivery
                delivery.holds += 1
            return
        answered = self._answers.get(req_id)
        if answered is not None:  # we ran it, and our answer (and ack) may have been lost: answer again
            self._link.publish(answered[1], "", answered[0], correlation_id=req_id)
            return
        cls = self.tasks.get(req["task"])
        refusal: FlowkitError | None = None
        if redelivered:
            refusal = WorkerError(
                f"request {req_id} for atom {req['atom']!r} was redelivered: the worker that had it "
                f"was lost and may have run it, so it is not run again"
            )
        elif cls is None:
            refusal = WorkerError(f"worker {self.id!r} does not serve task {req['task']}")
        if refusal is not None:
            LOG.warning("worker %s: %s", self.id, refusal)
            self._reply_now(req_id, reply_to, Failure.from_exception(refusal), redelivered)
            return
        assert cls is not None and self._pool is not None
        self._jobs[req_id] = delivery
        delivery.holds += 1
        self._announce[req_id] = (time.monotonic() + ANNOUNCE_AFTER_S, reply_to)
        if self._is_async(cls, req["action"]):  # on the loop, which cancels it at its timeout
            timeout = float(req["timeout"]) if "timeout" in req else None
            self._aio.spawn(lambda: self._async_job(cls, req, extras, reply_to, timeout, batched))
            return
        if "timeout" in req:
            timeout = float(req["timeout"])
            self._timeouts.watch(
                req_id,
                Deadline(time.monotonic() + timeout, timeout, reply_to, req["atom"], req["action"]),
            )
        with self._calls:
            self._backlog[req_id] = (cls, req, extras, reply_to, batched)

    def _start_next(self, lone: bool = False) -> None:
        """Start received calls on the pool while threads are free; the rest wait their turn in the
        backlog, where a task thread that finishes a call takes the next (see :meth:`_job`).

        ``lone``: the request of a message that carried it alone (a batch brings work for the pool: its
        calls go there, and the loop's thread stays free to read the next)."""
        pool = self._pool
        assert pool is not None
        with self._calls:
            # Alone, on the loop's own thread, a call without a timeout (one with may hang past it and
            # be abandoned, which the loop's thread cannot be) runs there, at the end of the round.
            inline = (
                lone
                and self._inline is None
                and not self._draining
                and threading.get_ident() == self._loop_thread
                and all(req_id in self._finished for req_id in self._on_pool)
            )
            while (call := self._next_call()) is not None:
                if inline and "timeout" not in call[1]:
                    self._inline, inline = call, False
                    continue
                inline = False
                pool.submit(self._job, *call)

    def _next_call(self) -> tuple[type[Task], dict[str, Any], dict[str, Any], str, bool] | None:
        """The oldest call of the backlog, if fewer than ``threads`` calls hold a thread (abandoned
        calls on a spare thread do not count, see abandon.py); with ``_calls`` held."""
        backlog = self._backlog
        if not backlog:
            return None
        finished = self._finished
        if sum(1 for req_id in self._on_pool if req_id not in finished) >= self.threads:
            return None
        req_id = next(iter(backlog))
        self._on_pool.add(req_id)
        return backlog.pop(req_id)

    def _reply_now(self, req_id: str, reply_to: str, failure: Failure, redelivered: bool = False) -> None:
        fields = {"redelivered": True} if redelivered else {}
        body = p.encode(p.RESULT, uuid=req_id, worker=self.id, ok=False, failure=failure.to_dict(), **fields)
        self._link.publish(body, "", reply_to, correlation_id=req_id)

    # -- running (task threads) ---------------------------------------------------------------------------

    def _post(self, item: tuple[Any, ...]) -> None:
        """Hand an answer (or a progress or event message) to the connection.

        Why not always through the loop's thread: waking it is a hand-off between threads (a wake-up
        and a GIL switch) on every answer's way back. While that thread waits for the broker it does
        not hold ``_owner``; the task thread of the last call running takes the lock then and sends
        what waits itself, as the loop would, and wakes nobody. Otherwise (other calls run, the loop
        is busy, or the link is down or just came back and owes its answers sent again first) the
        loop sends it, woken."""
        self._outbox.append(item)
        owner, link = self._owner, self._link
        # Only an answer that nothing else runs beside (a lone call: its round trip is the latency an
        # engine sees): when others still run, the loop sends their answers together, a message apart.
        # (Or while the loop's thread runs a call itself: nothing sends for the loop meanwhile.)
        alone = len(self._finished) >= len(self._jobs) or self._inline_since is not None
        if alone and link.owner is not None and owner.acquire(blocking=False):
            try:
                if link.connected and link.generation == self._answered_generation and not self._inbox:
                    link.cork()
                    self._flush()
                    link.flush()
            finally:
                owner.release()
            if not self._outbox and not self._inbox and not self._draining:
                return  # (a draining loop is woken: it stops once every answer is out)
        link.wake()

    def _job(
        self, cls: type[Task], req: dict[str, Any], extras: dict[str, Any], reply_to: str, batched: bool
    ) -> None:
        """Run a call, then the next of the backlog while there is one (a hand-off to another pool
        thread, and its wake-up, saved per call when requests come faster than threads free up)."""
        while True:
            self._call(cls, req, extras, reply_to, batched)
            with self._calls:
                call = self._next_call()
            if call is None:
                return
            cls, req, extras, reply_to, batched = call

    def _call(
        self,
        cls: type[Task],
        req: dict[str, Any],
        extras: dict[str, Any],
        reply_to: str,
        batched: bool,
        interruptible: bool = False,
    ) -> None:
        """Run one call and hand its answer on (a task thread, or the loop's own: :meth:`_run_inline`,
        where a KeyboardInterrupt ends :meth:`run` as it would while that thread waits)."""
        began = time.monotonic()
        item = call_task(cls, req, extras, reply_to, self.id, self._post, interruptible)
        atom_log.log_outcome(self.id, req, time.monotonic() - began, item)
        self._finished.add(req["uuid"])
        self._post((p.RESULTS if batched else p.RESULT, req["uuid"], reply_to, item))

    async def _async_job(
        self,
        cls: type[Task],
        req: dict[str, Any],
        extras: dict[str, Any],
        reply_to: str,
        timeout: float | None,
        batched: bool,
    ) -> None:
        began = time.monotonic()
        item = await call_task_async(cls, req, extras, reply_to, self.id, self._post, timeout)
        atom_log.log_outcome(self.id, req, time.monotonic() - began, item)
        self._finished.add(req["uuid"])
        self._post((p.RESULTS if batched else p.RESULT, req["uuid"], reply_to, item))

    @staticmethod
    def _async_class(cls: type[Task]) -> bool:
        """Whether ``cls`` has an async action (its requests are served from the async slots)."""
        return any(inspect.iscoroutinefunction(getattr(cls, a, None)) for a in ("execute", "revert"))

    def _is_async(self, cls: type[Task], action: str) -> bool:
        key = (cls, action)
        found = self._async_actions.get(key)
        if found is None:
            found = self._async_actions[key] = inspect.iscoroutinefunction(getattr(cls, action, None))
        return found


def _uuids(data: Any, corr: Any) -> list[str]:
    """The uuids of the requests in a message refused as malformed, to answer them with the reason: a
    single request's correlation id, or the ones its batch's items carry."""
    if isinstance(data, dict) and isinstance(data.get("requests"), list):
        found = [item.get("uuid") for item in data["requests"] if isinstance(item, dict)]
        return [req_id for req_id in found if isinstance(req_id, str) and req_id]
    return [corr] if isinstance(corr, str) and corr else []
