"""The conductor: claim a job, rebuild its flow from persistence, run it, consume it; repeat.

One thread waits on the board and claims; each claimed job runs on a thread of its own while it runs
(up to ``max_jobs`` at once; the threads are kept between jobs: ``conductor.job_threads``). A job's
flow is resumed from its flow detail, so whatever a dead conductor finished is not done again. What
happens to a job:

- its flow ends (SUCCESS, or REVERTED/FAILURE with the failure saved in the flow detail): consumed;
- its flow has nothing left but durable waits (``flowkit.Sleep``, ``WaitForEvent``): parked, i.e. given
  back in state WAITING until its wake-up time or event (``flowkit.jobboard.parking``), not counted;
- it cannot or must not run (no logbook, no factory, factory outside ``allow``, a saved record that
  cannot be read back, flow that does not build, compile or validate): set aside with the reason,
  and the conductor goes on;
- the conductor is stopping: the flow is suspended at a safe point and the job abandoned, not
  counted against it, for another conductor to resume;
- the board says the claim is IN_DOUBT: the flow is suspended and waits; CONFIRMED resumes it, LOST
  drops it (another conductor may have it already: two must never run one job at once);
- persistence refuses a write because a newer claim took the flow over (:class:`ClaimLost`: the
  engine runs with the claim's fencing token, ``job.fence``): the engine has stopped at once and the
  job is dropped, neither consumed nor abandoned: it is the newer claimant's now. This is what holds
  when the board could not say LOST in time (a conductor frozen past its session or lease);
- persistence is unreachable (past its own retrying): abandoned without counting against the job,
  and the conductor claims nothing until persistence answers again (one log line when it goes, one
  when it is back); the board being unreachable pauses claiming the same way;
- anything else goes wrong: abandoned with the error as its reason, which counts towards the board's
  ``max_attempts``;
- a cancel is asked for (``board.cancel``; the board tells the conductor holding the job at once, and
  a job claimed later carries it): the engine is cancelled, the flow reverted, and the job ends
  CANCELLED (``conductor.cancels``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from conductor import atom_log, cancels, resume
from conductor.job_threads import JobThreads
from conductor.outage import Outage, probe
from conductor.outage import reason as short_reason
from conductor.runs import Run, Stats
from flowkit.engines import Engine
from flowkit.exceptions import (
    ClaimLost,
    ConductorError,
    CorruptRecordError,
    JobBoardConnectionError,
    JobBoardError,
    StorageError,
)
from flowkit.factory import allow_list
from flowkit.jobboard import ClaimEvent, Job, JobBoard, fleet
from flowkit.jobboard.backends import display_url
from flowkit.notifier import ANY, Notifier
from flowkit.persistence.backends import Backend
from flowkit.persistence.shared import backend_for, ensure_schema
from flowkit.states import FLOW_FINISHED

LOG = logging.getLogger("conductor")

__all__ = ["Conductor", "Stats"]  # Stats lives in conductor.runs; kept importable from here


class Conductor:
    """Runs jobs from ``board`` with flows saved in ``persistence`` (a backend or its URL)."""

    def __init__(
        self,
        name: str,
        board: JobBoard,
        persistence: Backend | str,
        *,
        engine: str = "serial",
        max_jobs: int = 1,
        allow: Iterable[str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        wait_timeout: float = 0.5,
        grace: float = 10.0,
        heartbeat: float = fleet.DEFAULT_INTERVAL,
    ) -> None:
        """``allow``: module prefixes a job's factory must be under (None: any); ``grace``: seconds
        to wait for running atoms to reach a safe point when stopping; ``heartbeat``: seconds between
        the announcements that list this conductor in the board's fleet."""
        if max_jobs < 1:
            raise ConductorError(f"conductor {name!r}: max_jobs must be at least 1, got {max_jobs}")
        self.name = name
        self.board = board
        self.persistence = backend_for(persistence)
        self.engine = engine
        self.max_jobs = max_jobs
        self.allow = allow_list(allow)
        self.engine_options = dict(engine_options or {})
        self.wait_timeout = wait_timeout
        self.grace = grace
        self.stats = Stats()
        self.notifier = Notifier()
        """TaskFlow's conductor events: ``running_start``/``running_end`` around each run of a job's flow,
        ``job_consumed``, ``job_abandoned``; details ``{"conductor", "job", "engine", "persistence"}``."""
        self.engine_hooks: list[Callable[[Engine, Job], object]] = [atom_log.attach]
        """Called with each job's engine before it runs (``--otel`` attaches its tracing listener)."""
        self.flow_observers: list[Callable[[Job], None]] = []
        """Called with each job whose flow ended, after it is consumed (metrics count flows and atoms)."""
        self.started = time.time()
        self._heartbeat = fleet.Heartbeat(board, self._member, heartbeat)
        self._stopping = threading.Event()
        self._runs: dict[str, Run] = {}
        # Claim events heard while claim_next runs, for the job it is about to return (None: not claiming)
        self._claiming: list[tuple[ClaimEvent, frozenset[str]]] | None = None
        self._cancels = cancels.Heard()
        self._lock = threading.Lock()
        self._threads: JobThreads | None = None
        # A board coming back must be used at once (claims wait on it); persistence is probed less often.
        self._board_outage = Outage(LOG, f"conductor {name!r}: board {board!r}", cap=2.0)
        where = display_url(str(getattr(self.persistence, "url", persistence)))
        self._persistence_outage = Outage(LOG, f"conductor {name!r}: persistence {where}", cap=5.0)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Claim and run jobs until :meth:`stop`; then suspend and abandon what is running."""
        ensure_schema(self.persistence)
        self._heartbeat.start()
        slots = threading.BoundedSemaphore(self.max_jobs)
        self._threads = threads = JobThreads(self.name, self._run_job, slots.release)
        self.board.add_claim_listener(self._on_claims)
        self.board.add_cancel_listener(self._on_cancel)
        if self.allow is None:
            LOG.warning(
                "conductor %r: no allow list (--allow MODULE_PREFIX): a job may name any importable "
                "callable as its factory (os.system included) and this conductor will call it",
                self.name,
            )
        try:  # a ZooKeeper board starts following the job tree at its first read: before "running",
            # so that a conductor that says it is ready (and one taking over after a failover) has
            # its copy of the tree, not its first claim reading it
            self.board.job_count()
        except JobBoardError as exc:  # the claim loop meets it again and handles it there
            LOG.warning("conductor %r: could not read the board at start: %s", self.name, exc)
        LOG.info("conductor %r: running jobs from %r (max %d at once)", self.name, self.board, self.max_jobs)
        try:
            while not self._stopping.is_set():
                if not slots.acquire(timeout=self.wait_timeout):
                    continue
                # Checked after the slot is ours: a job thread that stopped, or saw an outage, says so
                # before it gives its slot back, so its job is not claimed again at once.
                if self._stopping.is_set() or not self._persistence_back():
                    slots.release()
                    continue
                try:
                    job = self._claim()
                except BaseException:
                    slots.release()
                    raise
                if job is None:
                    slots.release()
                    continue
                threads.start(job)  # its slot is given back once the job is done and its thread waits
        finally:
            self._wind_down()
            self.board.remove_claim_listener(self._on_claims)
            self.board.remove_cancel_listener(self._on_cancel)
            self._heartbeat.stop()

    def _member(self) -> fleet.Member:
        """This conductor as the fleet lists it (what it runs now: its jobs' uuids)."""
        with self._lock:
            running = tuple(self._runs)
        return fleet.Member(self.name, "conductor", started=self.started, running=running)

    @property
    def board_down(self) -> bool:
        """Whether the board is in an outage now (claiming paused)."""
        return bool(self._board_outage.down)

    @property
    def persistence_down(self) -> bool:
        """Whether persistence is in an outage now (claiming paused)."""
        return bool(self._persistence_outage.down)

    @property
    def running_jobs(self) -> int:
        """How many jobs this conductor runs now."""
        with self._lock:
            return len(self._runs)

    def stop(self) -> None:
        """Ask the conductor to stop (from another thread; a signal handler should only set a flag that
        a thread then acts on, as ``flowkit-conductor`` does: this takes a lock)."""
        self._stopping.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.changed.set()
            if run.engine is not None:
                run.engine.suspend()

    def _claim(self) -> Job | None:
        """The next job claimed for this conductor, or None after waiting a while for one."""
        job: Job | None = None
        with self._lock:
            self._claiming = []
        try:
            job = self.board.claim_next(self.name)
        except JobBoardConnectionError as exc:
            self._stopping.wait(self._board_outage.failed(short_reason(exc), "claiming nothing meanwhile"))
            return None
        except JobBoardError as exc:
            LOG.warning("conductor %r: could not claim: %s", self.name, exc)
            self._stopping.wait(self.wait_timeout)
            return None
        finally:
            self._register(job)
        self._board_outage.ok()
        if job is None:
            self.board.wait_claimable(self.wait_timeout)  # woken by a post: claim on the next turn
            return None
        self.stats.add("claimed")
        LOG.info("conductor %r: claimed job %s", self.name, job)
        return job

    def _register(self, job: Job | None) -> None:
        """Stop buffering claim events; give ``job`` its run, with what the board said while claiming.

        The board may report on a claim (IN_DOUBT, LOST) before ``claim_next`` returns it.
        """
        with self._lock:
            heard, self._claiming = self._claiming or [], None
            if job is None:
                return
            run = self._runs[job.uuid] = Run(job)
            run.cancel_reason = self._cancels.take(job.uuid) or job.cancel_reason
            for event, uuids in heard:
                if job.uuid in uuids:
                    run.hear(event)

    def _wind_down(self) -> None:
        self.stop()
        left = [] if self._threads is None else self._threads.stop(time.monotonic() + self.grace)
        if left:
            LOG.warning(
                "conductor %r: jobs still running after %.0fs, left to the board: %s",
                self.name,
                self.grace,
                left,
            )

    # -- claim events -------------------------------------------------------------------------------

    def _on_claims(self, event: ClaimEvent, job_uuids: frozenset[str]) -> None:
        with self._lock:
            runs = [self._runs[u] for u in job_uuids if u in self._runs]
            if self._claiming is not None:
                self._claiming.append((event, job_uuids))
        for run in runs:
            run.hear(event)
            if run.must_pause() and run.engine is not None:
                run.engine.suspend()
            run.changed.set()
        if runs:
            LOG.warning("conductor %r: claims %s: %s", self.name, event, sorted(r.job.name for r in runs))

    def _on_cancel(self, job_uuid: str, reason: str) -> None:
        """The board says a job of ours is asked to cancel (from its own thread: only wake things up)."""
        with self._lock:
            run = self._runs.get(job_uuid)
            if run is None:  # heard while claim_next runs: the job's run picks it up when registered
                self._cancels.keep(job_uuid, reason)
                return
            run.cancel_reason = run.cancel_reason or reason
            engine = run.engine
        LOG.info("conductor %r: job %s asked to cancel: %s", self.name, run.job, reason)
        if engine is not None:
            engine.cancel(reason)
        run.changed.set()

    # -- one job ------------------------------------------------------------------------------------

    def _run_job(self, job: Job) -> None:
        try:
            self._conduct(job)
        except ClaimLost as exc:
            self.stats.add("lost")
            LOG.warning(
                "conductor %r: job %s taken over by a newer claim; dropping it: %s", self.name, job, exc
            )
        except CorruptRecordError as exc:  # fails the same way on every claim: not worth retrying
            self._set_aside(job, f"malformed saved record: {exc}")
        except StorageError as exc:
            self._storage_failed(job, exc)
        except Exception as exc:
            LOG.exception("conductor %r: job %s failed unexpectedly", self.name, job)
            self._give_back(job, f"conductor {self.name!r}: {type(exc).__name__}: {exc}", count=True)
        finally:
            with self._lock:
                self._runs.pop(job.uuid, None)

    def _storage_failed(self, job: Job, exc: StorageError) -> None:
        """Persistence failed under a job: the job's fault only if persistence answers otherwise.

        Stopping (SIGTERM ends storage retries early) or an outage is not the job's fault: the job
        goes back uncounted, and during an outage claiming pauses until persistence answers again.
        """
        if self._stopping.is_set():
            self._give_back(job, f"conductor {self.name!r} stopped", count=False)
            return
        why = short_reason(exc)
        down = self._probe_persistence()
        if down is None:
            LOG.warning("conductor %r: job %s failed in persistence: %s", self.name, job, why)
            self._give_back(job, f"conductor {self.name!r}: {type(exc).__name__}: {why}", count=True)
            return
        self._persistence_outage.failed(down, "giving jobs back and claiming nothing meanwhile")
        self._give_back(job, f"conductor {self.name!r}: persistence unreachable: {down}", count=False)

    def _probe_persistence(self) -> str | None:
        url = getattr(self.persistence, "url", None)
        return probe(url) if isinstance(url, str) else None

    def _persistence_back(self) -> bool:
        """Whether claiming may go on: persistence is up, or it answered when tried again now."""
        if not self._persistence_outage.down:
            return True
        due = self._persistence_outage.due()
        if due > 0:
            self._stopping.wait(min(due, self.wait_timeout))
            return False
        down = self._probe_persistence()
        if down is None:
            self._persistence_outage.ok()
            return True
        self._persistence_outage.failed(down)
        return False

    def _conduct(self, job: Job) -> None:
        run = self._runs[job.uuid]
        reason, flow_detail = resume.find_flow(self.persistence, job)
        if reason is None and flow_detail is not None:
            reason, run.engine = resume.load(
                job,
                flow_detail,
                persistence=self.persistence,
                conductor=self.name,
                allow=self.allow,
                engine=self.engine,
                engine_options=self.engine_options,
            )
        if reason is not None:
            self._set_aside(job, reason)
            return
        engine = run.engine
        assert engine is not None  # resume.load gives an engine or the reason it could not
        for hook in self.engine_hooks:
            hook(engine, job)
        storage = engine.storage  # prepared by resume.load: asking for it again cannot fail
        engine.park_waits = True  # a flow left with only waits goes back to the board meanwhile

        # The engine checks at every atom change whether it must pause, so a suspend cannot be lost
        # to a run() that starts just after it.
        def pause_if_needed(*_: Any) -> None:
            if run.must_pause() or self._stopping.is_set():
                engine.suspend()

        engine.atom_notifier.register(ANY, pause_if_needed)
        if storage.get_flow_state() in FLOW_FINISHED and cancels.was_cancelled(storage):
            # its conductor died between the end of the cancel's revert and the job's end: running a
            # REVERTED flow would start it again from the beginning
            self._mark_cancelled(job, run)
            return
        with self._lock:
            reason = run.cancel_reason
        if reason is not None:  # asked before the engine was there (before the claim, or during loading)
            engine.cancel(reason)
        while True:
            if self._stopping.is_set():
                if not run.must_pause():  # else the claim dies with the session or lease anyway
                    self._give_back(job, f"conductor {self.name!r} stopped", count=False)
                return
            if run.lost:
                self.stats.add("lost")
                LOG.warning("conductor %r: claim on job %s lost; leaving it to others", self.name, job)
                return
            if run.in_doubt:
                run.changed.wait(self.wait_timeout)
                run.changed.clear()
                continue
            try:
                self._event("running_start", job, engine)
                try:
                    engine.run()
                finally:
                    self._event("running_end", job, engine)
            except ClaimLost:
                raise  # not ours any more, whatever the flow's state says: drop it (see _run_job)
            except Exception as exc:
                if storage.get_flow_state() not in FLOW_FINISHED:
                    raise
                LOG.info(
                    "conductor %r: job %s ended with its flow %s: %s",
                    self.name,
                    job,
                    storage.get_flow_state(),
                    exc,
                )
            if storage.get_flow_state() in FLOW_FINISHED:
                if cancels.was_cancelled(storage):
                    self._mark_cancelled(job, run)
                else:
                    self._consume(job, run)
                return
            if engine.parked is not None and not self._stopping.is_set() and not run.must_pause():
                self._park(job, engine.parked.wake_at, engine.parked.events)
                return

    def _event(self, event: str, job: Job, engine: Any) -> None:
        if self.notifier.active:  # nothing is built for a conductor nobody listens to
            details = {"conductor": self, "job": job, "engine": engine, "persistence": self.persistence}
            self.notifier.notify(event, details)

    # -- board operations, logged -------------------------------------------------------------------

    def _consume(self, job: Job, run: Run) -> None:
        try:
            self.board.consume(job, self.name)
        except JobBoardError as exc:  # the claim went meanwhile: whoever has it finds the flow done
            LOG.warning("conductor %r: could not consume job %s: %s", self.name, job, exc)
            return
        self.stats.add("consumed")
        self._event("job_consumed", job, run.engine)
        LOG.info(
            "conductor %r: consumed job %s (%s)",
            self.name,
            job,
            run.engine.storage.get_flow_state() if run.engine else "?",
        )
        for observer in self.flow_observers:
            try:
                observer(job)
            except Exception:
                LOG.exception("conductor %r: flow observer %r failed on job %s", self.name, observer, job)

    def _mark_cancelled(self, job: Job, run: Run) -> None:
        try:
            self.board.mark_cancelled(job, self.name)
        except JobBoardError as exc:  # the claim went meanwhile: whoever has it finds the flow reverted
            LOG.warning("conductor %r: could not mark job %s cancelled: %s", self.name, job, exc)
            return
        self.stats.add("cancelled")
        LOG.info("conductor %r: cancelled job %s (flow reverted): %s", self.name, job, run.cancel_reason)

    def _park(self, job: Job, wake_at: float | None, events: tuple[str, ...]) -> None:
        try:
            self.board.park(job, self.name, wake_at, events)
        except JobBoardError as exc:  # the claim went meanwhile: whoever has it resumes the waits
            LOG.warning("conductor %r: could not park job %s: %s", self.name, job, exc)
            return
        self.stats.add("parked")
        LOG.info(
            "conductor %r: parked job %s until %s%s",
            self.name,
            job,
            "-" if wake_at is None else time.strftime("%H:%M:%S", time.localtime(wake_at)),
            f" or event {', '.join(events)}" if events else "",
        )

    def _give_back(self, job: Job, reason: str, count: bool) -> None:
        try:
            self.board.abandon(job, self.name, reason, count=count)
        except JobBoardError as exc:  # the claim is gone anyway (lost session, closed board)
            LOG.warning("conductor %r: could not abandon job %s: %s", self.name, job, exc)
            return
        self.stats.add("abandoned")
        self._event("job_abandoned", job, None)
        LOG.info("conductor %r: abandoned job %s: %s", self.name, job, reason)

    def _set_aside(self, job: Job, reason: str) -> None:
        try:
            self.board.set_aside(job, self.name, reason)
        except JobBoardError as exc:
            LOG.warning("conductor %r: could not set job %s aside: %s", self.name, job, exc)
            return
        self.stats.add("set_aside")
        LOG.warning("conductor %r: set job %s aside: %s", self.name, job, reason)
