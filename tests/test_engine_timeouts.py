"""What each local engine does with a call past its timeout, beyond the shared contract
(``test_engine_contract.py``): a thread is abandoned (never waited for, its late result logged and dropped,
the pool thread free again), a process is stopped and replaced, and a timed call's process is reused while
its calls end in time.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from flowkit import LinearFlow, engines, retry
from flowkit.exceptions import AtomTimeout, NotFound, NotSerializableError
from flowkit.states import AtomState, FlowState
from tests.support.journal import Journal
from tests.support.tasks import Add, Sleepy, WhereAmI
from tests.support.wait import wait_until


def test_an_abandoned_threads_late_result_is_discarded_and_logged(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowkit.engines.timeouts")
    flow = LinearFlow("f").add(Sleepy(name="slow", provides="slow", inject={"pause": 1.0}, timeout=0.2))
    engine = engines.load(flow, engine="serial", store={"journal": str(journal)})
    with pytest.raises(AtomTimeout, match=r"timeout of 0\.2s"):
        engine.run()
    assert "keeps running" in caplog.text
    wait_until(lambda: "returned after its timeout" in caplog.text, 5, "the late result to be logged")
    assert engine.storage.get_atom_state("slow") is AtomState.REVERTED
    with pytest.raises(NotFound, match="slow"):
        engine.storage.fetch("slow")  # the late result was never stored


def test_a_timed_out_call_frees_its_pool_thread_at_once(journal: Journal) -> None:
    """One pool thread: the retry's second attempt runs while the first attempt's thread still sleeps."""
    flow = LinearFlow("f", retry=retry.Times(2)).add(
        Sleepy(name="flaky", inject={"pause": 6.0, "slow_times": 1}, timeout=0.3)
    )
    engine = engines.load(flow, engine="parallel", max_workers=1, store={"journal": str(journal)})
    started = time.monotonic()
    engine.run()
    assert time.monotonic() - started < 4.5  # not the first attempt's 6 s
    assert journal.names("execute-end") == ["flaky"]  # the second attempt's; the first one still sleeps
    assert engine.storage.get_flow_state() is FlowState.SUCCESS


def test_timed_calls_reuse_one_process_while_they_end_in_time() -> None:
    flow = LinearFlow("f").add(*(WhereAmI(name=f"w{i}", provides=f"pid{i}", timeout=30) for i in range(5)))
    engine = engines.load(flow, engine="parallel", executor="processes", max_workers=2)
    engine.run()
    pids = {engine.storage.fetch(f"pid{i}") for i in range(5)}
    assert len(pids) == 1 and os.getpid() not in pids


def test_a_timed_call_whose_arguments_do_not_pickle_fails_unstarted() -> None:
    flow = LinearFlow("f").add(Add(name="add", timeout=5))
    engine = engines.load(
        flow, engine="parallel", executor="processes", max_workers=1, store={"x": threading.Lock(), "y": 1}
    )
    with pytest.raises(NotSerializableError, match="the arguments of atom 'add' cannot be serialized"):
        engine.run()
    assert engine.storage.get_atom_state("add") is AtomState.REVERTED
