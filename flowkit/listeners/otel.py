"""OpenTelemetry spans per flow and per atom (``pip install 'flowkit[otel]'``).

One span per run of a flow (``flow NAME``, from RUNNING or RESUMING to the state the run ends in) and,
inside it, one per atom execute (``execute NAME``) and revert (``revert NAME``); a failed atom's span
has status ERROR with the failure's summary, and a flow that did not succeed its final state. Spans
go to the tracer provider given, or to OpenTelemetry's global one (set by the SDK, or by running the
process under ``opentelemetry-instrument``): without an SDK they cost nothing.

Only the OpenTelemetry API is imported, and only by this module; the engine's per-atom path gains
nothing for flows that are not traced (a listener is registered only when asked for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowkit import extras
from flowkit.listeners.base import Listener
from flowkit.states import AtomState, FlowState

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

    from flowkit.engines.engine import Engine

__all__ = ["TracingListener"]

S = AtomState
_STARTS = {S.RUNNING: "execute", S.REVERTING: "revert"}
_ENDS = {
    S.SUCCESS: "execute",
    S.FAILURE: "execute",
    S.REVERTED: "revert",
    S.REVERT_FAILURE: "revert",
}
_FLOW_RUNNING = frozenset({FlowState.RUNNING, FlowState.RESUMING, FlowState.REVERTING})


class TracingListener(Listener):
    """Records the engine's runs as OpenTelemetry spans (see the module docstring).

    ``attributes`` go on every flow span (a conductor adds the job's uuid).
    """

    def __init__(
        self,
        engine: Engine,
        tracer_provider: TracerProvider | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        extras.require("otel", "tracing flows with OpenTelemetry")
        from opentelemetry import trace

        super().__init__(engine)
        self._tracer = trace.get_tracer("flowkit", tracer_provider=tracer_provider)
        self._attributes = dict(attributes or {})
        self._flow: Span | None = None
        self._atoms: dict[tuple[str, str], Span] = {}

    @classmethod
    def hook(cls, tracer_provider: TracerProvider | None = None) -> Callable[[Engine, Any], None]:
        """A conductor's engine hook: trace each job's engine, with the job's uuid on its flow span."""

        def attach(engine: Engine, job: Any) -> None:
            cls(engine, tracer_provider, {"flowkit.job.uuid": str(job.uuid)}).register()

        return attach

    def on_flow(self, state: FlowState, details: dict[str, Any]) -> None:
        from opentelemetry.trace import Status, StatusCode

        if state in _FLOW_RUNNING:
            if self._flow is None:
                attributes = {"flowkit.flow.name": str(details.get("flow_name", "?"))}
                if details.get("flow_uuid"):
                    attributes["flowkit.flow.uuid"] = str(details["flow_uuid"])
                self._flow = self._tracer.start_span(
                    f"flow {details.get('flow_name', '?')}", attributes={**attributes, **self._attributes}
                )
            return
        if self._flow is None:
            return
        span, self._flow = self._flow, None
        for key in list(self._atoms):  # atoms left running by a suspend end with the flow's span
            self._atoms.pop(key).end()
        span.set_attribute("flowkit.flow.state", state.value)
        if state in (FlowState.FAILURE, FlowState.REVERTED):
            span.set_status(Status(StatusCode.ERROR, f"flow {state.value}"))
        span.end()

    def on_atom(self, atom_name: str, state: AtomState, details: dict[str, Any]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        start = _STARTS.get(state)
        if start is not None:
            context = trace.set_span_in_context(self._flow) if self._flow is not None else None
            self._atoms[(start, atom_name)] = self._tracer.start_span(
                f"{start} {atom_name}", context=context, attributes={"flowkit.atom.name": atom_name}
            )
            return
        end = _ENDS.get(state)
        span = self._atoms.pop((end, atom_name), None) if end is not None else None
        if span is None:
            return
        span.set_attribute("flowkit.atom.state", state.value)
        if state in (S.FAILURE, S.REVERT_FAILURE):
            failure = details.get("result")
            summary = getattr(failure, "summary", None) or str(failure)
            span.set_status(Status(StatusCode.ERROR, f"{atom_name}: {summary}"))
        span.end()
