"""Cancelling a run: start nothing new, let what runs finish, revert everything that ran, end REVERTED.

``engine.cancel(reason)`` may come from any thread, or from a listener inside the run. It sets the
engine's :class:`CancelToken` and the run's stop flag (the one ``suspend()`` sets), so the forward
loop starts no more atoms without checking anything new per atom. Once the running atoms have
finished (the run's drain), :func:`revert_cancelled` reverts the whole flow because of a
:class:`~flowkit.exceptions.Cancelled` failure, saved in the flow's ``flow_failures`` under
:data:`CANCEL_KEY` before any revert starts: a resume after a crash mid-cancel therefore reverts
(the engine reverts any flow with saved failures), never runs forward.

What happens when:

- forward: nothing new starts; running atoms finish; then everything that ran is reverted (failures
  that came in meanwhile are reverted too, no retry controller is asked); the flow ends REVERTED and
  ``run()`` raises ``Cancelled`` (the flow's own failures, if any, as its ``__cause__``);
- during a revert (a failure is being reverted): the revert goes on to its end (a cancel cannot stop
  an undo half way); the cancel is saved beside the failures and ``run()`` raises ``Cancelled``;
- a revert fails: the flow ends FAILURE as without a cancel, and ``run()`` raises the revert's own
  exception (a ``WrappedFailure`` when several reverts failed) with what caused the revert as its
  ``__context__`` (the ``Cancelled``, in a ``WrappedFailure`` with the flow's own failures if any):
  an operator must look at it;
- before ``run()``: the next run starts nothing, reverts what an earlier run left (a suspended or
  crashed flow), ends REVERTED and raises ``Cancelled``;
- after the flow finished (SUCCESS, REVERTED, FAILURE) with no run in progress: nothing to cancel,
  ``cancel()`` returns False and the next ``run()`` is not affected. A cancel that comes while a run is
  ending SUCCESS is dropped the same way: the flow finished first.

A suspend during a cancel's revert stops it as any revert (the flow is SUSPENDED with the cancel
saved); the next ``run()`` finishes the revert and raises ``Cancelled``.

Other parts of the engine that hold something open (async atoms, durable waits) hear a cancel through
:meth:`CancelToken.add_callback` on ``run.cancel``, or poll :meth:`CancelToken.is_set`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from flowkit.exceptions import Cancelled, WrappedFailure
from flowkit.failure import Failure
from flowkit.states import FLOW_FINISHED
from flowkit.storage import Storage

if TYPE_CHECKING:
    from flowkit.engines.revert import RevertWave
    from flowkit.engines.run import Flag, Run, Step

CANCEL_KEY = "flowkit.cancel"
"""The key of the cancel's failure in ``flow_failures`` (what a revert's ``flow_failures`` shows)."""


class CancelToken:
    """One engine's cancel request: its reason, and who to tell. Thread-safe; the first reason wins."""

    __slots__ = ("_active", "_callbacks", "_event", "_lock", "_reason", "handled")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._reason: str | None = None
        self._callbacks: list[Callable[[str], None]] = []
        self._active = False
        self.handled = False
        """The run has taken the cancel in (its revert began): only a later suspend stops that revert.
        Written by the engine's thread only."""

    @property
    def reason(self) -> str | None:
        """Why the run is cancelled, or None when it is not."""
        return self._reason

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a cancel is requested (True) or ``timeout`` passes (False)."""
        return self._event.wait(timeout)

    def add_callback(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(reason)`` once on cancel (now, if already cancelled); returns its remover.

        Called in the canceller's thread, so it must only wake something up (cancel a future, set an
        event), never block.
        """
        with self._lock:
            reason = self._reason
            if reason is None:
                self._callbacks.append(callback)
        if reason is not None:
            callback(reason)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def request(self, reason: str, finished: Callable[[], bool], stop: Callable[[], None]) -> bool:
        """Ask for a cancel; False when one was asked already or there is nothing to cancel.

        ``finished()`` says whether the flow has ended; it is asked only while no run is in progress
        (under the lock that :meth:`begin` and :meth:`end` take, so no run can start or end meanwhile).
        ``stop()`` sets the run's stop flag: it is called before the callbacks, because a callback
        ends running atoms (async executes) whose completions may let the run drain and take the
        cancel in at once, clearing the stop flag for its revert; a stop flag set after that would
        stop the cancel's own revert as a suspend does.
        """
        with self._lock:
            if self._reason is not None or (not self._active and finished()):
                return False
            self._reason = reason
            callbacks, self._callbacks = self._callbacks, []
            self._event.set()
            stop()  # under the lock: take_in() cannot clear the flag before this sets it
        for callback in callbacks:
            callback(reason)
        return True

    def take_in(self, suspend: Flag) -> None:
        """The run takes the cancel in (its revert begins): clear the stop flag the cancel set, so that
        only a later suspend stops the revert. Under the lock, so the clear comes after the set."""
        with self._lock:
            self.handled = True
            suspend.clear()

    def begin(self) -> None:
        """A run starts: a cancel from now on is its to honour."""
        with self._lock:
            self._active = True

    def end(self, finished: bool) -> None:
        """A run ended; once the flow has ``finished``, a cancel it did not honour is dropped."""
        with self._lock:
            self._active = False
            if finished:
                self._reason = None
                self._event.clear()
                self.handled = False


def cancel_failure(flow_name: str, reason: str) -> Failure:
    """The failure a cancel is saved as (in ``flow_failures``, under :data:`CANCEL_KEY`)."""
    return Failure.from_exception(Cancelled(flow_name, reason))


def revert_cancelled(run: Run) -> Generator[Step, None, bool]:
    """The run has drained after a cancel: revert everything that ran; True (the forward pass is over).

    Failures that came in meanwhile are reverted along (no retry controller is asked: the flow is
    being cancelled); the stop flag that the cancel set is cleared, so that only a later suspend
    stops this revert.
    """
    from flowkit.engines.revert import revert_all

    token = run.cancel
    assert token is not None and token.reason is not None
    c = run.c
    failures = {c.names[i]: f for i, f in run.failed.items()}
    failures[CANCEL_KEY] = cancel_failure(run.st.flow_name, token.reason)
    run.failed = {}
    run.timers.clear()
    run.ready.clear()
    token.take_in(run.suspend)
    yield from revert_all(run, failures, retry_failed=False)
    return True


def carry_on(run: Run, wave: RevertWave) -> Generator[Step, None, None]:
    """A revert wave stopped by a cancel's stop flag: save the cancel and finish the wave.

    Called by ``revert_all`` when its wave stopped early; does nothing unless a cancel stopped it (a
    suspend then stops the revert as usual).
    """
    token = run.cancel
    if token is not None and token.reason is not None and not token.handled and not wave.done:
        token.take_in(run.suspend)
        st = run.st
        if CANCEL_KEY not in st.flow_failures:
            st.flow_failures = {**st.flow_failures, CANCEL_KEY: cancel_failure(st.flow_name, token.reason)}
            if st.recorder is not None:  # saved before the revert goes on: a resume still reverts
                st.recorder.flow_changed(st, st.flow_state)
        wave.failures = st.flow_failures
        try:
            yield from wave.go(suspendable=True)
        finally:
            run.revert_failed = run.revert_failed or wave.failed


def raise_if_cancelled(st: Storage) -> None:
    """A REVERTED flow that was cancelled: raise :class:`Cancelled`, chained to the flow's own failures."""
    failure = st.flow_failures.get(CANCEL_KEY)
    if failure is None:
        return
    exc = failure.exception
    cancelled = exc if isinstance(exc, Cancelled) else Cancelled(st.flow_name, failure.exception_str)
    others = [f for k, f in st.flow_failures.items() if k != CANCEL_KEY]
    cause: BaseException | None = None
    if len(others) == 1:
        cause = others[0].exception or WrappedFailure(others)
    elif others:
        cause = WrappedFailure(others)
    raise cancelled.with_traceback(None) from cause


def flow_finished(st: Storage | None) -> bool:
    """Whether a flow with this storage has ended (None: not even prepared, so not ended)."""
    return st is not None and st.flow_state in FLOW_FINISHED
