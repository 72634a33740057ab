"""Listeners: registration, timings, logging, printing, and thread safety under a parallel engine."""

from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any

import pytest

from flowkit import engines
from flowkit.listeners import Listener, LoggingListener, PrintingListener, TimingListener
from flowkit.states import AtomState, FlowState
from tests import example_flows


def _run_quietly(engine: Any) -> BaseException | None:
    try:
        engine.run()
    except Exception as exc:
        return exc
    return None


# -- base -------------------------------------------------------------------------------------------


def test_context_manager_registers_and_deregisters() -> None:
    engine = engines.load(example_flows.linear())
    with TimingListener(engine) as timing:
        assert timing.registered
        assert engine.notifier.listeners_count() == 1
        assert engine.atom_notifier.listeners_count() == 1
        engine.run()
    assert not timing.registered
    assert engine.notifier.listeners_count() == 0
    assert engine.atom_notifier.listeners_count() == 0


def test_register_and_deregister_are_idempotent() -> None:
    engine = engines.load(example_flows.linear())
    listener = Listener(engine)
    listener.register()
    listener.register()
    assert engine.atom_notifier.listeners_count() == 1
    listener.deregister()
    listener.deregister()
    assert engine.atom_notifier.listeners_count() == 0
    assert not engine.atom_notifier.active


def test_base_hooks_receive_typed_states_and_progress() -> None:
    class Recorder(Listener):
        def __init__(self, engine: Any) -> None:
            super().__init__(engine)
            self.events: list[tuple[str, object]] = []

        def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
            self.events.append(("flow", state))

        def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
            self.events.append((atom_name, state))

        def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
            self.events.append((atom_name, progress))

    engine = engines.load(example_flows.linear())
    with Recorder(engine) as rec:
        engine.run()
    assert ("step-a", 0.5) in rec.events
    assert ("step-c", AtomState.SUCCESS) in rec.events
    assert rec.events[0] == ("flow", FlowState.RUNNING)
    assert rec.events[-1] == ("flow", FlowState.SUCCESS)
    assert all(isinstance(e[1], AtomState | FlowState | float) for e in rec.events)


def test_junctions_are_never_reported() -> None:
    engine = engines.load(example_flows.wide(), engine="parallel")
    assert any(kind == "junction" for _, kind in engine.compile().graph.nodes(data="kind"))
    with PrintingListener(engine, stream=io.StringIO()) as printer, TimingListener(engine) as timing:
        engine.run()
    assert "junction" not in printer.stream.getvalue()  # type: ignore[union-attr]
    assert set(timing.timings) == {f"{side}-{i}" for side in ("left", "right") for i in range(5)}


# -- timing -----------------------------------------------------------------------------------------


def test_timings_recorded_for_every_atom() -> None:
    engine = engines.load(example_flows.linear(), store={"pause": 0.02})
    with TimingListener(engine) as timing:
        engine.run()
    assert set(timing.timings) == {"step-a", "step-b", "step-c"}
    assert all(0.015 <= seconds < 1.0 for seconds in timing.timings.values())
    assert timing.revert_timings == {}


def test_revert_timings_are_kept_apart() -> None:
    engine = engines.load(example_flows.failing())
    with TimingListener(engine) as timing:
        error = _run_quietly(engine)
    assert isinstance(error, ValueError)
    assert set(timing.timings) == {"prepare", "build", "explode"}  # FAILURE ends an execute too
    assert set(timing.revert_timings) == {"prepare", "build", "explode"}
    assert timing.snapshot() == (timing.timings, timing.revert_timings)


def test_timing_keeps_latest_attempt_of_retried_atoms() -> None:
    engine = engines.load(example_flows.with_retry())
    with TimingListener(engine) as timing:
        engine.run()
    assert {"three-times", "before", "flaky"} <= set(timing.timings)
    assert {"before", "flaky"} <= set(timing.revert_timings)  # reverted between attempts
    assert timing.elapsed("flaky") is None  # nothing is running any more


# -- logging ----------------------------------------------------------------------------------------


def test_logging_listener_logs_transitions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flowkit.listeners.logging")
    engine = engines.load(example_flows.linear())
    with LoggingListener(engine):
        engine.run()
    messages = [r.getMessage() for r in caplog.records if r.name == "flowkit.listeners.logging"]
    assert "flow 'three-steps' PENDING -> RUNNING" in messages
    assert "task 'step-b' RUNNING -> SUCCESS" in messages
    assert messages[-1] == "flow 'three-steps' RUNNING -> SUCCESS"
    assert {r.levelno for r in caplog.records} == {logging.INFO}


def test_logging_listener_logs_failures_with_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    engine = engines.load(example_flows.failing())
    with LoggingListener(engine, level=logging.DEBUG, failure_level=logging.ERROR):
        _run_quietly(engine)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "task 'explode' RUNNING -> FAILURE: ValueError: boom in explode" in errors
    assert any(
        m.startswith("flow 'doomed' REVERTING -> REVERTED because of: atom 'explode' failed with ValueError")
        for m in errors
    )
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "task 'prepare' REVERTING -> REVERTED" in debug


def test_logging_listener_custom_logger_progress_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.custom")
    caplog.set_level(logging.INFO, logger="tests.custom")
    engine = engines.load(example_flows.failing())
    with LoggingListener(engine, logger=logger, progress=True, tracebacks=True):
        _run_quietly(engine)
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.custom"]
    assert "task 'prepare' progress 50%" in messages
    failure = next(m for m in messages if "RUNNING -> FAILURE" in m)
    assert "Traceback (most recent call last):" in failure and "raise ValueError" in failure


def test_logging_listener_logs_revert_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    engine = engines.load(example_flows.revert_fails())
    with LoggingListener(engine):
        _run_quietly(engine)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "task 'make-thing' REVERTING -> REVERT_FAILURE: OSError: cannot undo" in warnings
    assert any(m.startswith("flow 'stuck' REVERTING -> FAILURE") for m in warnings)


# -- printing ---------------------------------------------------------------------------------------


def test_printing_listener_prints_atoms_and_states() -> None:
    out = io.StringIO()
    engine = engines.load(example_flows.failing())
    with PrintingListener(engine, stream=out, timestamps="none"):
        _run_quietly(engine)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["flow", "'doomed'", "PENDING", "->", "RUNNING"]
    assert any(line.split()[:5] == ["task", "'build'", "SUCCESS", "->", "REVERTING"] for line in lines)
    assert any(
        line.startswith("task  'explode' ")
        and line.endswith("RUNNING -> FAILURE  ValueError: boom in explode")
        for line in lines
    )
    assert lines[-1].split() == ["flow", "'doomed'", "REVERTING", "->", "REVERTED"]


def test_printing_listener_defaults_to_stderr_with_wall_clock(capsys: pytest.CaptureFixture[str]) -> None:
    engine = engines.load(example_flows.linear())
    with PrintingListener(engine, progress=True):
        engine.run()
    captured = capsys.readouterr()
    assert captured.out == ""
    first = captured.err.splitlines()[0]
    assert time.strptime(first.split()[0].split(".")[0], "%H:%M:%S")
    assert "'step-a'" in captured.err and "progress 50%" in captured.err


def test_printing_listener_relative_timestamps() -> None:
    out = io.StringIO()
    engine = engines.load(example_flows.linear())
    with PrintingListener(engine, stream=out, timestamps="relative"):
        engine.run()
    assert all(
        line.split()[0].startswith("+") and line.split()[0].endswith("s")
        for line in out.getvalue().splitlines()
    )


def test_printing_listener_rejects_unknown_timestamps() -> None:
    engine = engines.load(example_flows.linear())
    with pytest.raises(ValueError, match="timestamps"):
        PrintingListener(engine, timestamps="utc")  # type: ignore[arg-type]


# -- thread safety ----------------------------------------------------------------------------------


def test_events_are_handled_one_at_a_time_under_a_parallel_engine() -> None:
    class Overlap(Listener):
        def __init__(self, engine: Any) -> None:
            super().__init__(engine)
            self.inside = 0
            self.overlaps = 0
            self.progress_events = 0
            self.threads: set[str] = set()

        def _enter(self) -> None:
            self.inside += 1
            if self.inside > 1:
                self.overlaps += 1
            time.sleep(0.0005)  # widen the window a race would need
            self.inside -= 1

        def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
            self._enter()

        def on_progress(self, atom_name: str, progress: float, details: dict[str, Any]) -> None:
            self.threads.add(threading.current_thread().name)
            self.progress_events += 1
            self._enter()

    engine = engines.load(example_flows.many_progress(8), engine="parallel", max_workers=8)
    with Overlap(engine) as watcher, TimingListener(engine) as timing:
        engine.run()
    assert watcher.progress_events == 8 * 20
    assert watcher.overlaps == 0
    assert threading.main_thread().name not in watcher.threads  # progress came from workers
    assert len(timing.timings) == 8
