"""TaskFlow's listeners under their module paths, and TaskFlow-style receivers on flowkit's base."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.failure import Failure
from flowkit.listeners import capturing, timing
from flowkit.listeners import logging as logging_listeners
from flowkit.listeners.base import Listener
from flowkit.persistence.backends.base import Backend
from flowkit.states import AtomState
from tests import example_flows
from tests.support.persistence import fresh_backend, saved_flow


class Five(Task):
    def execute(self) -> int:
        return 5


def _values(listener: capturing.CaptureListener) -> list[str]:
    out = []
    for kind, state, details in listener.values:
        name = details[f"{kind}_name"]
        out.append(f"{name} {state}({details['result']})" if "result" in details else f"{name} {state}")
    return out


def test_capture_listener_records_taskflow_shaped_details() -> None:
    engine = engines.load(LinearFlow("f").add(Five("t")))
    with capturing.CaptureListener(engine) as capture:
        engine.run()
    assert _values(capture) == ["f RUNNING", "t RUNNING", "t SUCCESS(5)", "f SUCCESS"]
    kind, _state, details = capture.values[1]
    assert kind == capturing.CaptureListener.TASK
    assert details["task_uuid"] == engine.storage.get_atom_uuid("t")
    assert details["old_state"] == AtomState.PENDING


def test_capture_listener_switches_and_skips() -> None:
    flow = LinearFlow("f").add(Five("t1"), Five("t2"))
    engine = engines.load(flow)
    with capturing.CaptureListener(engine, capture_flow=False, skip_tasks=["t1"]) as capture:
        engine.run()
    assert _values(capture) == ["t2 RUNNING", "t2 SUCCESS(5)"]


def test_capture_listener_failure_and_retry_kinds() -> None:
    engine = engines.load(example_flows.failing())
    capture = capturing.CaptureListener(engine, task_listen_for=[AtomState.FAILURE])
    with capture, pytest.raises(ValueError):
        engine.run()
    tasks = [(s, d) for k, s, d in capture.values if k == "task"]
    assert [s for s, _ in tasks] == [AtomState.FAILURE]
    assert isinstance(tasks[0][1]["result"], Failure)


def test_receivers_cost_nothing_for_listeners_that_do_not_override_them() -> None:
    class Plain(Listener):
        pass

    engine = engines.load(LinearFlow("f").add(Five("t")))
    plain = Plain(engine)
    assert not (plain._receives_tasks or plain._receives_flows or plain._receives_retries)
    assert plain._engine is engine


def test_duration_listener_measures_tasks_and_the_flow() -> None:
    engine = engines.load(LinearFlow("f").add(example_flows.Step("s", inject={"pause": 0.05})))
    with timing.DurationListener(engine) as durations:
        engine.run()
    assert durations.durations[("task", "s")] >= 0.05
    assert durations.durations[("flow", "f")] >= durations.durations[("task", "s")]


def test_printing_duration_listener_prints_taskflow_lines() -> None:
    lines: list[str] = []
    engine = engines.load(LinearFlow("f").add(Five("t")))
    with timing.PrintingDurationListener(engine, printer=lines.append):
        engine.run()
    assert lines[0] == "'f' flow started."
    assert lines[1] == "'t' task started."
    assert lines[2].startswith("It took task 't' ") and lines[2].endswith(" seconds to finish.")
    assert lines[3].startswith("It took flow 'f' ")


def test_event_time_listener_stamps_every_transition() -> None:
    engine = engines.load(LinearFlow("f").add(Five("t")))
    with timing.EventTimeListener(engine) as stamps:
        engine.run()
    task = stamps.timestamps[("task", "t")]
    assert task["SUCCESS-timestamp"] >= task["RUNNING-timestamp"]
    assert "SUCCESS-timestamp" in stamps.timestamps[("flow", "f")]


def test_dynamic_logging_listener_raises_the_level_on_failure(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.dynamic")
    engine = engines.load(example_flows.failing())
    caplog.set_level(logging.DEBUG, logger="test.dynamic")
    with logging_listeners.DynamicLoggingListener(engine, log=log), pytest.raises(ValueError):
        engine.run()
    levels = {r.levelno for r in caplog.records}
    assert levels == {logging.DEBUG, logging.WARNING}
    with_exc = [r for r in caplog.records if r.exc_info]
    assert len(with_exc) == 1 and "'explode'" in with_exc[0].getMessage()


def test_dynamic_logging_listener_quiet_run_and_custom_level(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.dynamic2")
    caplog.set_level(logging.DEBUG, logger="test.dynamic2")
    engine = engines.load(LinearFlow("f").add(Five("t")))
    with logging_listeners.DynamicLoggingListener(engine, log=log, failure_level=logging.ERROR):
        engine.run()
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    assert any("with result '5'" in r.getMessage() for r in caplog.records)


def test_taskflow_listener_names_are_importable_from_the_package() -> None:
    from flowkit import listeners

    for name in ("CaptureListener", "DynamicLoggingListener", "DurationListener", "EventTimeListener"):
        assert getattr(listeners, name).__name__ == name


class Boom(Task):
    def execute(self) -> None:
        raise RuntimeError("boom")


def _saved(backend: Backend, engine: engines.Engine) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flow's and atom t's meta as the backend has them now."""
    fd = saved_flow(backend, engine.storage.flow_uuid)
    ad = fd.find(engine.storage.get_atom_uuid("t"))
    assert ad is not None
    return fd.meta, ad.meta


def test_duration_listener_saves_durations_in_the_atom_and_flow_metadata(tmp_path: object) -> None:
    backend = fresh_backend(f"sqlite:///{tmp_path}/fk.db")
    engine = engines.load(LinearFlow("f").add(Five("t")), backend=backend)
    with timing.DurationListener(engine):
        engine.run()
    flow_meta, atom_meta = _saved(backend, engine)
    assert isinstance(atom_meta["duration"], float) and atom_meta["duration"] >= 0
    assert isinstance(flow_meta["duration"], float)
    assert "store" in flow_meta  # the flow's own entries are kept


def test_logging_listener_with_taskflows_log_keyword_logs_everything_at_one_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.tf_style")
    engine = engines.load(LinearFlow("f").add(Boom("t")))
    listener = logging_listeners.LoggingListener(engine, log=log)
    with caplog.at_level(logging.DEBUG, logger="test.tf_style"), listener, pytest.raises(RuntimeError):
        engine.run()
    records = [r for r in caplog.records if r.name == "test.tf_style"]
    assert records and {r.levelno for r in records} == {logging.DEBUG}
    assert len([r for r in records if r.exc_info]) == 1  # the task's failure carries its exception
    caplog.clear()
    engine = engines.load(LinearFlow("f").add(Five("t")))
    listener = logging_listeners.LoggingListener(engine, log=log, level=logging.INFO)
    with caplog.at_level(logging.DEBUG, logger="test.tf_style"), listener:
        engine.run()
    assert {r.levelno for r in caplog.records if r.name == "test.tf_style"} == {logging.INFO}


def test_printing_listener_called_as_taskflow_does_prints_taskflows_sentences(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flowkit.listeners import printing

    engine = engines.load(LinearFlow("f").add(Five("t"), Boom("b")))
    with printing.PrintingListener(engine), pytest.raises(RuntimeError):
        engine.run()
    out = capsys.readouterr()
    lines = out.out.splitlines()
    uuid = engine.storage.get_atom_uuid("t")
    assert lines[0] == (
        f"{engine} has moved flow 'f' ({engine.storage.flow_uuid}) into state 'RUNNING' from state 'PENDING'"
    )
    assert f"{engine} has moved task 't' ({uuid}) into state 'RUNNING' from state 'PENDING'" in lines
    assert (
        f"{engine} has moved task 't' ({uuid}) into state 'SUCCESS' from state 'RUNNING' "
        "with result '5' (failure=False)"
    ) in lines
    assert any("into state 'FAILURE'" in ln and "(failure=True)" in ln for ln in lines)
    assert "RuntimeError: boom" in out.out  # the failed task's traceback follows its line
    assert out.err == ""


def test_printing_listener_with_taskflows_stderr_and_listen_for(capsys: pytest.CaptureFixture[str]) -> None:
    from flowkit.listeners import printing

    engine = engines.load(LinearFlow("f").add(Five("t")))
    with printing.PrintingListener(engine, task_listen_for=["SUCCESS"], flow_listen_for=[], stderr=True):
        engine.run()
    out = capsys.readouterr()
    assert out.out == ""
    assert [ln.split(" has moved ")[1][:4] for ln in out.err.splitlines()] == ["task"]
