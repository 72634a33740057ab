"""The engine's side of the worker-based engine: a Dispatcher that sends each call to a remote worker.

The engine's scheduler thread is the only caller, so this class does its messaging on that thread: no
I/O thread, no locks, no hand-offs. ``submit`` publishes a request (or queues it); ``wait`` reads
replies, notifies and timeouts until a call completes.

A request lives through three stages (``transition_timeout`` = T):

1. waiting, in this engine: no live worker serves the task on our topics, or their threads are taken.
   Workers advertise their threads in every notify (minus the ones abandoned calls hold), and a topic
   is sent no more than it can run (see 2): a backlog waits here, where it costs nothing and is never
   blamed on a worker, and goes as threads come free. Only when no live worker has served the task
   for T does it fail, with :class:`~flowkit.exceptions.NoWorkerAvailable`.
2. sent: published to the task's queue on the topic with the most free threads. A topic gets up to
   :data:`PIPELINE` requests per free thread, so that a worker finds its next request queued when it
   finishes one (:data:`~flowkit.workers.seats.DEEP_PIPELINE` where its calls come back quick, see
   :mod:`flowkit.workers.seats`). It fails with :class:`~flowkit.exceptions.RequestTimeout` when no
   worker took it for T while the live workers serving it were not all busy (by their heartbeats,
   which list what they run for any engine): dead, gone, or not consuming. Waiting its turn behind
   busy workers is not a fault.
3. running: a worker took it (it said ``running``, sent progress, or listed it in a heartbeat). It
   fails when that worker stops heartbeating (a few of its heartbeat periods; the worker's own thread
   heartbeats while its tasks run, so a long task is fine), when one of its heartbeats no longer lists
   the request (the reply was lost, e.g. while this engine was reconnecting), or when this engine has
   been without a broker for T.

An atom's ``timeout`` (or the engine's ``default_timeout``) bounds stages 2 and 3: past it the call fails
with :class:`~flowkit.exceptions.AtomTimeout`, whatever the worker does; the worker, told the timeout in
the request, abandons the call too, and its late answer is discarded. The request's TTL is the same
timeout, so no worker starts it after the engine gave up. Without a timeout a request has no TTL (it
may wait its turn for as long as busy workers take): one the engine failed because every worker serving
it died may still be run by a worker that comes to its queue before the queue expires.

The judgements from heartbeats are apart (this class acts on them): stages 2 and 3 in
:mod:`flowkit.workers.liveness`, a refused redelivered request in :mod:`flowkit.workers.redelivery`.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kombu

from flowkit.atom import Atom
from flowkit.context import AtomContext
from flowkit.engines.aio import flags_of
from flowkit.engines.dispatch import Completion, Dispatcher, NodeProgress
from flowkit.exceptions import (
    AtomTimeout,
    FlowkitError,
    InvalidMessageError,
    NoWorkerAvailable,
    RequestTimeout,
    WorkerError,
)
from flowkit.failure import Failure
from flowkit.notifier import EVENT_UPDATE_PROGRESS
from flowkit.workers import liveness, redelivery
from flowkit.workers import protocol as p
from flowkit.workers import topology as t
from flowkit.workers.discovery import Registry, WorkerInfo
from flowkit.workers.link import Link
from flowkit.workers.options import DEFAULT_TRANSITION_TIMEOUT_S, WorkerOptions
from flowkit.workers.request import (
    RUNNING,
    SENT,
    WAITING,
    Request,
    encode_request,
    not_started,
    request_ids,
    task_name,
)
from flowkit.workers.seats import DEEP_PIPELINE, Seats

LOG = logging.getLogger(__name__)

CHECK_EVERY_S = 0.05  # how often deadlines and liveness are checked while waiting
ANSWERS = (p.RESULT, p.RESULTS, p.RUNNING, p.PROGRESS, p.EVENT, p.NOTIFY)
"""The messages an engine's queue takes."""
LATE_MEMORY = 1024  # timed-out requests remembered, so that their late answers are logged as such
SLOW_MEMORY_S = 1.0  # a topic where a call of ours was announced running keeps the shallow pipeline this long
REPLY_QUEUE_EXPIRES_S = 60.0  # at least: replies wait this long for an engine that lost the broker


class WorkerDispatcher(Dispatcher):
    """Runs atoms on remote workers over a message broker (see the module docstring)."""

    inline = False
    """Calls complete on workers; completions come from :meth:`wait`."""

    def __init__(
        self,
        options: WorkerOptions | str,
        exchange: str = "flowkit",
        topics: Sequence[str] = (),
        transition_timeout: float = DEFAULT_TRANSITION_TIMEOUT_S,
        transport_options: Mapping[str, Any] | None = None,
        default_timeout: float | None = None,
    ) -> None:
        """Work from ``options``; a broker URL instead builds them from the other arguments."""
        super().__init__()
        if not isinstance(options, WorkerOptions):
            options = WorkerOptions(
                transport=options,
                topics=topics,
                exchange=exchange,
                transition_timeout=transition_timeout,
                default_timeout=default_timeout,
                transport_options=transport_options or {},
            )
        self.options = options
        self.transport = options.transport
        self.exchange = options.exchange
        self.topics = list(options.topics)
        self.timeout = options.transition_timeout
        self.default_timeout = options.default_timeout
        """The timeout of atoms that have none of their own (None: unbounded)."""
        self._options = dict(options.transport_options)
        self.id_source: Callable[[], dict[str, str]] | None = None
        """Gives, at each run's start, the ids every request carries for the workers' log lines
        (``{"flow": ..., "job": ...}``); the worker-based engine sets it (:mod:`flowkit.workers.engine`)."""
        self.ids: dict[str, str] = {}
        self._link: Link | None = None
        self._consumer: kombu.Consumer | None = None
        self._registry = Registry(self.topics, self.timeout)
        self._requests: dict[str, Request] = {}  # sent, not answered yet
        self._waiting: dict[str, deque[Request]] = {}  # lane -> requests not sent yet, oldest first
        self._unserved: dict[str, float] = {}  # lane -> since when no live worker serves it
        self._freed = False  # a thread may have come free: send what waits
        self._seats = Seats()
        self._async_seats = Seats()  # async calls take workers' async slots, not their threads
        self._late: OrderedDict[str, str] = OrderedDict()  # timed-out request -> its atom
        self._slow_at: dict[str, float] = {}  # topic -> when a call of ours there was last announced running
        self._reply_queue = ""
        self._next_check = 0.0
        self._generation = 0
        self._inbox: deque[Any] = deque()
        self._corked: list[Request] = []  # sent as far as the seats go; published by the next wait
        # lane -> (capacity, threads) of the registry, for the submits of one round (cleared by wait)
        self._admit: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        self._ids = request_ids()

    @property
    def workers(self) -> dict[str, WorkerInfo]:
        """The workers heard from during the current run, by id, with their tasks and last-seen times."""
        return dict(self._registry.workers)

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, on_progress: NodeProgress) -> None:
        """Connect, declare our reply queue and ask every worker to announce itself."""
        super().start(on_progress)
        self.ids = self.id_source() if self.id_source is not None else {}
        self._registry = Registry(self.topics, self.timeout)
        self._requests.clear()
        self._inbox.clear()
        self._corked.clear()
        self._admit.clear()
        self._ids = request_ids()
        self._waiting.clear()
        self._unserved.clear()
        self._seats = Seats()
        self._async_seats = Seats()
        self._slow_at.clear()
        self._reply_queue = f"{self.exchange}.engine.{uuid.uuid4().hex}"
        self._link = Link(self.transport, self._setup, self._options, name="worker-based engine")
        self._link.connect(self.timeout)
        self._generation = self._link.generation

    def _setup(self, channel: Any) -> None:
        t.declare_exchanges(channel, self.exchange)
        expires = max(REPLY_QUEUE_EXPIRES_S, 2 * self.timeout)
        queue = t.reply_queue(self.exchange, self._reply_queue, expires)
        self._consumer = kombu.Consumer(
            channel, [queue], no_ack=True, on_message=self._on_raw, accept=["json"]
        )
        self._consumer.consume()
        kombu.Producer(channel, auto_declare=False).publish(
            p.encode(p.DISCOVER),
            exchange=t.discover_exchange(self.exchange),
            routing_key="",
            content_type=p.CONTENT_TYPE,
            content_encoding="utf-8",
            reply_to=self._reply_queue,
            retry=False,
        )

    def stop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.delete_queue(self._reply_queue, self._consumer)
            link.close()

    # -- submitting ------------------------------------------------------------------------------------

    def submit(
        self, i: int, atom: Atom, action: str, kwargs: dict[str, Any], ctx: AtomContext | None = None
    ) -> None:
        now = time.monotonic()
        timeout = atom.timeout if atom.timeout is not None else self.default_timeout
        try:
            body, req_id = encode_request(atom, action, kwargs, ctx, timeout, self.ids, next(self._ids))
        except FlowkitError as exc:
            self._done.append((i, not_started(action), False, Failure.from_exception(exc)))
            return
        progress = ctx.progress if ctx is not None else None
        req = Request(req_id, i, atom.name, task_name(atom), action, body, now, progress, timeout, atom=atom)
        req.is_async = any(flags_of(atom))  # a class with an async action is served from async slots
        queue = self._waiting.get(req.lane)
        if queue is not None:  # others wait for this task already: after them
            queue.append(req)
            return
        link = self._link
        if link is not None and link.connected:
            async_ = req.is_async
            seats = self._async_seats if async_ else self._seats
            found = self._admit.get(req.lane)
            if found is None:  # the workers' capacity, read once per round (see wait)
                reg = self._registry
                found = self._admit[req.lane] = (
                    reg.capacity(req.task, now, async_),
                    reg.threads(now, async_),
                )
            topic = seats.free_topic(req.task, *found)
            if topic is not None and self._publish(req, topic, now):
                return
        self._waiting[req.lane] = deque((req,))
        self._freed = True  # look at it on the next round (it may be unserved: its clock starts)

    def _publish(self, req: Request, topic: str, now: float) -> bool:
        """Send ``req`` to ``topic`` with the others of this round (see :meth:`wait`); False when the
        connection is down (it stays waiting)."""
        link = self._link
        if link is None or not link.connected:
            return False
        req.stage, req.topic, req.sent, req.waited = SENT, topic, now, now
        if req.timeout is not None:
            req.deadline = now + req.timeout
        self._requests[req.uuid] = req
        self._corked.append(req)
        (self._async_seats if req.is_async else self._seats).take(topic, req.task)
        return True

    # -- waiting -------------------------------------------------------------------------------------

    def wait(self, timeout: float | None) -> Completion | None:
        """The next completion; reads the broker, and checks deadlines every ``CHECK_EVERY_S``.

        Requests published since the last wait were corked (see :class:`~flowkit.workers.link.Link`):
        they go now with one write, and so do the ones this wait publishes, before it blocks or returns.
        """
        self._uncork()
        self._admit.clear()
        try:
            return self._wait(timeout)
        finally:
            self._uncork()

    def _uncork(self) -> None:
        """Send the requests of this round, several to a message where the workers take batches (see
        :meth:`_send`), with one write; if that failed, they were never sent: back to waiting, first."""
        corked, link = self._corked, self._link
        if not corked or link is None:
            return
        self._corked = []
        link.cork()
        if self._send(link, corked) and link.flush():
            return
        link.flush()  # nothing to send on a lost link: this only uncorks it
        for req in reversed(corked):
            if self._requests.pop(req.uuid, None) is None:
                continue
            (self._async_seats if req.is_async else self._seats).give(req.topic, req.task)
            req.stage, req.deadline = WAITING, math.inf
            self._waiting.setdefault(req.lane, deque()).appendleft(req)
        self._freed = True

    def _send(self, link: Link, reqs: list[Request]) -> bool:
        """Publish ``reqs``: ``requests`` messages per (topic, task, timeout), each up to what its
        workers take at once (:meth:`~flowkit.workers.discovery.Registry.batch`: a topic with the deep
        pipeline, several per thread), single ``request`` messages where a worker serving the task does
        not take batches; False when the link is lost.

        While fewer of ours are in flight on the topic than its workers have threads, a group is spread
        evenly over at least as many messages as it has threads' worth of requests, up to one per
        worker: the broker hands each message to one worker, and a burst of slow calls in one message
        would load one worker while another idles. (With every thread's worth in flight already, each
        worker holds requests, and one message per round is the cheaper.)"""
        groups: dict[tuple[str, str, float | None], list[Request]] = {}
        requests = self._requests
        for req in reqs:
            if requests.get(req.uuid) is not req:
                continue  # failed since (say, its worker died): nothing waits for an answer
            group_key = (req.topic, req.task, req.timeout)
            group = groups.get(group_key)
            if group is None:
                groups[group_key] = [req]
            else:
                group.append(req)
        now = time.monotonic()
        reply_to, exchange = self._reply_queue, self.exchange
        deep = self._seats.deep
        for (topic, task, timeout), group in groups.items():
            key = t.task_key(topic, task)
            per_thread = DEEP_PIPELINE if topic in deep else 1
            size, workers, threads = self._registry.batch(topic, task, now, per_thread)
            if size <= 0:  # an older worker serves it: one message per request
                for req in group:
                    if not link.publish(
                        req.message(),
                        exchange,
                        key,
                        reply_to=reply_to,
                        correlation_id=req.uuid,
                        expiration=timeout,  # past it the engine has failed the call: no worker may start it
                    ):
                        return False
                continue
            n = len(group)
            messages = -(-n // size)
            seats = self._async_seats if group[0].is_async else self._seats
            if seats.held(topic) - n < workers * threads:  # a worker may be idle: spread the group
                messages = max(messages, min(workers, -(-n // threads)))
            each, extra = divmod(n, messages)
            first = 0
            for k in range(messages):
                last = first + each + (k < extra)
                body = p.batch(p.REQUESTS, [req.body for req in group[first:last]])
                if not link.publish(body, exchange, key, reply_to=reply_to, expiration=timeout):
                    return False
                first = last
        return True

    def _wait(self, timeout: float | None) -> Completion | None:
        done = self._done
        end = None if timeout is None else time.monotonic() + timeout
        link = self._link
        while True:
            if self._inbox:
                self._drain_inbox()
            if self._freed and self._waiting:
                self._flush_waiting(time.monotonic())
            if done:
                break
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + CHECK_EVERY_S
                self._check(now)
                if done or self._inbox:  # publishing may have read messages: act on them first
                    continue
            if end is not None and now >= end:
                return None
            budget = self._next_check - now if end is None else min(end, self._next_check) - now
            if link is None:
                raise WorkerError("the worker-based dispatcher is not running (start() was not called)")
            self._uncork()
            link.pump(max(0.0, budget))
            if link.generation != self._generation and link.connected:
                self._reconnected(link.generation)
        return done.popleft()

    def _reconnected(self, generation: int) -> None:
        """Our connection came back: the workers' silence was ours, and waiting requests may go now."""
        LOG.info("worker-based engine reconnected; %d request(s) in flight", len(self._requests))
        self._generation = generation
        self._registry.forgive()
        self._freed = True

    def _check(self, now: float) -> None:
        reg = self._registry
        down_since = self._link.down_since if self._link is not None else None
        saturated: dict[tuple[str, str], bool] = {}
        for req in list(self._requests.values()):
            if now >= req.deadline:
                self._time_out(req)
                continue
            # Running while we have no broker: the workers' silence says nothing (liveness judges it).
            judged_by_heartbeats = down_since is None or req.stage != RUNNING
            if judged_by_heartbeats and redelivery.suspect_died(req, reg, now):
                assert req.refusal is not None
                self._finish(req, False, req.refusal)  # the one that died may have run it
                continue
            failed = liveness.silence(req, reg, now, self.timeout, down_since, saturated)
            if failed is not None:
                self._fail(req, failed)
        if self._waiting:
            self._flush_waiting(now)

    def _time_out(self, req: Request) -> None:
        """The atom's timeout passed: fail it now. The worker abandons the call by itself (it was told
        the timeout); whatever it answers later is discarded."""
        where = f"worker {req.worker!r}" if req.worker else f"topic {req.topic!r} (request {req.uuid})"
        assert req.timeout is not None
        self._late[req.uuid] = req.atom_name
        if len(self._late) > LATE_MEMORY:
            self._late.popitem(last=False)
        self._fail(req, AtomTimeout(req.atom_name, req.action, req.timeout, where))

    def _flush_waiting(self, now: float) -> None:
        """Send waiting requests while their tasks have free threads; fail the ones no live worker has
        served for T. Work per call grows with the number of tasks waiting, not of requests."""
        self._freed = False
        link = self._link
        if link is None:
            return
        reg, timeout, waiting, unserved = self._registry, self.timeout, self._waiting, self._unserved
        threads = reg.threads(now) if link.connected else {}
        for lane in list(waiting):
            queue = waiting[lane]
            task, async_ = queue[0].task, queue[0].is_async
            capacity = reg.capacity(task, now, async_) if link.connected else {}
            if not capacity:
                since = unserved.setdefault(lane, now)
                if now - since > timeout:
                    del waiting[lane], unserved[lane]
                    for req in queue:
                        self._fail(req, NoWorkerAvailable(task, self.topics, timeout), sent=False)
                continue
            unserved.pop(lane, None)
            seats = self._async_seats if async_ else self._seats
            slots = reg.threads(now, True) if async_ else threads
            while queue:
                topic = seats.free_topic(task, capacity, slots)
                if topic is None or not self._publish(queue[0], topic, now):
                    break
                queue.popleft()
            if not queue:
                del waiting[lane]

    def _finish(self, req: Request, ok: bool, value: Any, sent: bool = True) -> None:
        if req.stage != WAITING:
            del self._requests[req.uuid]
            (self._async_seats if req.is_async else self._seats).give(req.topic, req.task)
            self._freed = True
        self._done.append((req.node, req.action if sent else not_started(req.action), ok, value))

    def _fail(self, req: Request, exc: FlowkitError, sent: bool = True) -> None:
        LOG.warning("%s", exc)
        self._finish(req, False, Failure.from_exception(exc), sent)

    # -- receiving ------------------------------------------------------------------------------------

    def _on_raw(self, message: Any) -> None:
        """Every message on our queue: replies to our requests and notifies from workers.

        Only queued here: py-amqp delivers inside ``publish`` too, and acting on a message (which may
        publish) in the middle of another publish would send one request twice.
        """
        self._inbox.append(message)

    def _drain_inbox(self) -> None:
        inbox = self._inbox
        while inbox:
            message = inbox.popleft()
            try:
                data = p.decode(message.body, message.content_type, ANSWERS)
                if data["type"] == p.RESULTS:
                    for item in p.items(data):
                        self._on_message(item)
                else:
                    self._on_message(data)
            except InvalidMessageError as exc:
                LOG.warning("worker-based engine: dropped a message: %s", exc)

    def _on_message(self, data: dict[str, Any]) -> None:
        kind = data["type"]
        if kind == p.NOTIFY:
            self._on_notify(data)
            return
        self._registry.seen(data["worker"])
        req = self._requests.get(data["uuid"])
        if req is None:  # finished already (timed out, or a duplicate): nothing waits for it
            atom = self._late.pop(data["uuid"], None) if kind == p.RESULT else None
            if atom is not None:
                LOG.info("discarded the late answer of worker %r for timed-out atom %r", data["worker"], atom)
            return
        if kind == p.RESULT:
            if req.stage == SENT and not req.is_async:  # back before it was announced running: quick
                self._quick(req.topic)
            self._on_result(req, data)
            return
        if not req.is_async:
            self._slow_at[req.topic] = time.monotonic()
            self._seats.deep.discard(req.topic)
        req.stage, req.worker = RUNNING, data["worker"]  # running, or progress (which implies it)
        if kind == p.PROGRESS:
            if req.progress is not None:
                req.progress(req.atom_name, float(data["progress"]))
            elif self._on_progress is not None:
                self._on_progress(req.node, float(data["progress"]))
            self._task_event(req, EVENT_UPDATE_PROGRESS, {"progress": float(data["progress"])})
        elif kind == p.EVENT:
            self._task_event(req, data["event"], data["details"])

    def _quick(self, topic: str) -> None:
        """A call on ``topic`` came back before it was announced running: the topic takes the deep
        pipeline (see :mod:`flowkit.workers.seats`), unless one was announced running lately."""
        deep = self._seats.deep
        if topic in deep:
            return
        slow_at = self._slow_at.get(topic)
        if slow_at is None or time.monotonic() - slow_at > SLOW_MEMORY_S:
            deep.add(topic)

    @staticmethod
    def _task_event(req: Request, event: str, details: dict[str, Any]) -> None:
        """Hand an event the task sent on its worker to the notifier of the engine's copy of it."""
        notifier = req.atom.__dict__.get("_notifier") if req.atom is not None else None
        if notifier is not None and notifier.active:
            notifier.notify(event, details)

    def _on_result(self, req: Request, data: dict[str, Any]) -> None:
        if data.get("redelivered"):
            now = time.monotonic()
            refusal = redelivery.judge(req, self._registry, data, now)
            if refusal is redelivery.Refusal.RESEND:
                self._resend(req, now)
            if refusal is not redelivery.Refusal.STANDS:
                return
        if data["ok"]:
            self._finish(req, True, data.get("result"))
            return
        try:
            failure = Failure.from_dict(data["failure"])
        except FlowkitError as exc:
            failure = Failure.from_exception(
                InvalidMessageError(
                    f"worker {data['worker']!r} answered request {req.uuid} for atom "
                    f"{req.atom_name!r} with a malformed failure: {exc}"
                )
            )
        self._finish(req, False, failure)

    def _resend(self, req: Request, now: float) -> None:
        """No worker runs or answered ``req``, and every one that might have had it is alive: send it
        again (a fresh message, so a worker runs it)."""
        req.refusal = req.unheard = None
        req.waited = now
        link = self._link
        LOG.warning("request %s (atom %r) was lost in transit; sending it again", req.uuid, req.atom_name)
        if link is None or not link.publish(
            req.message(),
            self.exchange,
            t.task_key(req.topic, req.task),
            reply_to=self._reply_queue,
            correlation_id=req.uuid,
            expiration=None if req.timeout is None else max(0.001, req.deadline - now),
        ):
            self._fail(req, RequestTimeout(f"could not send request {req.uuid} again: the broker is gone"))

    def _on_notify(self, data: dict[str, Any]) -> None:
        info = self._registry.notified(data)
        if info is None:
            return
        self._admit.clear()
        for req in list(self._requests.values()):
            if req.stage == RUNNING and req.worker == info.id and req.uuid not in info.running:
                self._fail(
                    req,
                    RequestTimeout(
                        f"the reply of worker {info.id!r} to request {req.uuid} for atom {req.atom_name!r} "
                        f"was lost (it no longer runs it, and no answer arrived)"
                    ),
                )
            elif req.stage == SENT and req.uuid in info.running:
                req.stage, req.worker = RUNNING, info.id
                req.refusal = req.unheard = None
            elif req.unheard is not None and info.id in req.unheard:
                req.unheard.discard(info.id)
                if not req.unheard:
                    self._resend(req, time.monotonic())
        self._freed = True  # it may have come, or have threads free again
