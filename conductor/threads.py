"""The threads a conductor runs its jobs on, kept from one job to the next.

Why: starting a thread for every job (and its handshake with the starting thread) cost the conductor
about 0.1 ms of CPU per one-task job, ~2% of its CPU per job; a kept thread is handed the next job
through a queue for a fifth of that. How many jobs run at once is still the claim loop's to decide
(its slots); here a job goes to an idle thread if there is one, else to a new thread. A thread bears
its job's name while it runs it (the wind-down names the jobs left running by their threads), and
one idle for ``idle`` seconds ends.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from flowkit.jobboard import Job

IDLE_S = 30.0


class JobThreads:
    """Runs ``run(job)`` on a kept thread, then ``done()`` once that thread is ready for another job."""

    def __init__(
        self, name: str, run: Callable[[Job], None], done: Callable[[], None], idle: float = IDLE_S
    ) -> None:
        self.name = name
        self._run = run
        self._done = done
        self._idle_s = idle
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting on the queue (each job put there is owed to one of them)
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self, job: Job) -> None:
        """Run ``job`` on an idle thread, or on a new one."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"conductor {self.name!r}: job threads closed")
            if self._idle:
                self._idle -= 1
                self._queue.put(job)
                return
            thread = threading.Thread(target=self._serve, args=(job,), name=self._label(job), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def close(self) -> None:
        """No more jobs: idle threads end now, busy ones once their job is over."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)

    def join(self, deadline: float) -> list[str]:
        """Wait until ``deadline`` (``time.monotonic()``) for the threads to end; the names of those
        still running (each named after its job)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]

    def _label(self, job: Job) -> str:
        return f"{self.name}:{job.uuid[:8]}"

    def _serve(self, job: Job | None) -> None:
        me = threading.current_thread()
        while job is not None:
            me.name = self._label(job)
            ran = False
            try:
                self._run(job)
                ran = True
            finally:
                me.name = f"{self.name}:idle"
                if ran:  # (a thread that an exception ends takes no more jobs)
                    with self._lock:
                        self._idle += 1
                self._done()  # after counting itself idle: the next job claimed can come here
            job = self._next()

    def _next(self) -> Job | None:
        """The next job for this thread; None: it ends (closed, or idle too long)."""
        try:
            return self._queue.get(timeout=self._idle_s)
        except queue.Empty:
            pass
        with self._lock:  # a job put while the wait timed out is still this thread's to run
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                self._idle -= 1
                return None
