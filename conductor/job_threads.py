"""The threads a conductor runs its jobs on: started as jobs need them, up to ``max_jobs``, and kept
between jobs.

Why kept: a thread started per job cost the conductor about 0.15 ms of CPU per job on this project's
machines (the OS thread made and torn down, its stack mapped and unmapped, Python's bootstrap around
it), 5% of a one-task job's whole conductor CPU (issue 13); handing a job to a waiting thread costs a
queue put and get. Why not :class:`concurrent.futures.ThreadPoolExecutor`: its threads are joined at
interpreter exit, so a job stuck past the conductor's grace would keep the process from exiting;
these are daemon threads, as the per-job ones were (the board hands such a job to another conductor).

The slot a job holds (the conductor's ``max_jobs`` semaphore) is given back only once its thread is
waiting again: a job claimed on that slot always finds a thread, and no more than ``max_jobs`` threads
are ever made. A thread is named after the job it runs (``conductor:job-uuid-prefix``), for logs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from flowkit.jobboard import Job


class JobThreads:
    """Daemon threads that run ``run(job)`` for each job given to :meth:`start`, then ``done()``."""

    def __init__(self, name: str, run: Callable[[Job], None], done: Callable[[], None]) -> None:
        self.name = name
        self._run, self._done = run, done
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job, counted before their job's slot is given back
        self._threads: list[threading.Thread] = []

    def start(self, job: Job) -> None:
        """Run ``job`` on a waiting thread, or on a new one when none waits."""
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                thread = threading.Thread(target=self._serve, name=f"{self.name}:{job.uuid[:8]}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            me.name = f"{self.name}:{job.uuid[:8]}"
            served = False
            try:
                self._run(job)
                served = True
            finally:  # (what escapes ``run`` ends this thread: the next job gets a new one)
                me.name = f"{self.name}:idle"
                with self._lock:
                    if served:
                        self._idle += 1
                    else:
                        self._threads.remove(me)
                self._done()

    def stop(self, deadline: float) -> list[str]:
        """Take no more jobs: each thread ends after the job it runs; wait for them until ``deadline``
        (``time.monotonic()``). The names of the threads still running a job then."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in threads if thread.is_alive()]

    @property
    def count(self) -> int:
        """How many threads were made (at most the conductor's ``max_jobs``)."""
        with self._lock:
            return len(self._threads)
