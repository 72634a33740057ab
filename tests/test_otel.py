"""OpenTelemetry spans per flow and per atom (``flowkit[otel]``): a flow's run is one span, each atom's
execute and revert a child of it, with the failure recorded; and a conductor started with ``--otel``
attaches the listener to every job's engine, with the job's uuid on the flow span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from conductor import Conductor
from flowkit import engines
from flowkit.jobboard import JobBoard, JobState
from flowkit.listeners.otel import TracingListener
from tests import ops_flows
from tests.support.conductors import Conductors, running
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def test_a_failed_flow_is_one_span_with_its_atoms_executed_and_reverted(
    spans: tuple[TracerProvider, InMemorySpanExporter], tmp_path: pytest.TempPathFactory
) -> None:
    provider, exporter = spans
    gate = f"{tmp_path}/gate"
    open(gate, "w").close()
    engine = engines.load(ops_flows.gated(), store={"gate": gate})
    with TracingListener(engine, tracer_provider=provider), pytest.raises(RuntimeError, match="closed"):
        engine.run()
    found = _by_name(exporter.get_finished_spans())
    assert set(found) == {"flow gated", "execute prepare", "execute gate", "revert prepare", "revert gate"}
    flow = found["flow gated"]
    assert flow.attributes is not None and flow.attributes["flowkit.flow.state"] == "REVERTED"
    assert flow.status.status_code is StatusCode.ERROR
    for name in ("execute prepare", "execute gate", "revert prepare"):
        span = found[name]
        assert span.parent is not None and span.parent.span_id == flow.context.span_id
    failed = found["execute gate"]
    assert failed.status.status_code is StatusCode.ERROR and "gate" in str(failed.status.description)
    assert found["execute prepare"].status.status_code is StatusCode.UNSET
    assert found["execute prepare"].attributes == {
        "flowkit.atom.name": "prepare",
        "flowkit.atom.state": "SUCCESS",
    }


def test_a_flow_that_succeeds(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    engine = engines.load(ops_flows.napping("ok", steps=2), store={"seconds": 0.01})
    with TracingListener(engine, tracer_provider=provider):
        engine.run()
    found = _by_name(exporter.get_finished_spans())
    assert set(found) == {"flow ok", "execute nap-0", "execute nap-1"}
    assert found["flow ok"].status.status_code is not StatusCode.ERROR


def test_flowkit_conductor_otel_flag_runs_jobs_traced(
    board: JobBoard, board_url: str, conductors: Conductors
) -> None:
    conductors.start("traced", board_url, "--board-name", board.name, "--otel")
    assert "tracing flows with OpenTelemetry" in conductors.log("traced")
    job = board.post_flow("tests.ops_flows:napping", store={"seconds": 0.01})
    wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the job consumed")


def test_a_conductor_traces_every_job(
    spans: tuple[TracerProvider, InMemorySpanExporter], board: JobBoard, persistence_url: str
) -> None:
    provider, exporter = spans
    job = board.post_flow("tests.ops_flows:napping", store={"seconds": 0.01})
    conductor = Conductor("c1", board, persistence_url, wait_timeout=0.1)
    conductor.engine_hooks.append(TracingListener.hook(tracer_provider=provider))
    with running(conductor):
        wait_until(lambda: board.state_of(job) is JobState.COMPLETE, 30, "the job consumed")
    flow = _by_name(exporter.get_finished_spans())["flow napping"]
    assert flow.attributes is not None and flow.attributes["flowkit.job.uuid"] == job.uuid
    assert flow.attributes["flowkit.flow.uuid"] == job.flow_uuid
