"""Prometheus metrics of flowkit processes (``prometheus_client``; every name starts with ``flowkit_``).

- :class:`BoardCollector` (``flowkit serve``): read at each scrape: jobs on the board by state, fleet
  members by kind and status, flow details by state.
- :class:`ConductorMetrics` (``flowkit-conductor --metrics-port``): jobs claimed, consumed, abandoned
  and set aside; jobs running; flows and atoms by final state; atom durations by task.

A worker's metrics and the small HTTP server daemons use for ``/metrics`` and ``/healthz`` are in
:mod:`flowkit.workers.metrics` (the workers sit below this package). This module is imported only when
metrics are asked for, so a conductor without ``--metrics-port`` stays light.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flowkit.states import FlowState, JobState
from flowkit.workers.metrics import Health, serve

__all__ = ["BoardCollector", "ConductorMetrics", "Health", "flow_counts", "serve"]

if TYPE_CHECKING:
    from flowkit.jobboard import Job, JobBoard
    from flowkit.persistence.backends import Backend
    from flowkit.persistence.models import FlowDetail

LOG = logging.getLogger("flowkit.metrics")

DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0)


def flow_counts(backend: Backend) -> Counter[str]:
    """Flow details by state: one GROUP BY on a SQL backend, a scan of the rows otherwise."""
    engine = getattr(backend, "engine", None)
    if engine is not None:
        import sqlalchemy as sa

        from flowkit.persistence.backends._tables import flowdetails as t

        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.state, sa.func.count()).group_by(t.c.state)).all()
        return Counter({str(state): int(n) for state, n in rows})
    from flowkit.persistence.rows import FLOWS

    with backend.get_connection() as conn:
        rows = conn.run(lambda: conn.select_rows(FLOWS))
    return Counter(str(r["state"]) for r in rows)


class BoardCollector(Collector):
    """What the board and persistence hold now, read at each scrape (``get()`` gives them lazily)."""

    def __init__(self, board: Callable[[], JobBoard], backend: Callable[[], Backend]) -> None:
        self._board, self._backend = board, backend

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("flowkit_board_jobs", "Jobs on the board by state", labels=["state"])
        fleet = GaugeMetricFamily(
            "flowkit_fleet_members", "Fleet members by kind and status", labels=["kind", "status"]
        )
        flows = GaugeMetricFamily("flowkit_flows", "Flow details in persistence by state", labels=["state"])
        up = GaugeMetricFamily(
            "flowkit_up", "Whether the board and persistence answered this scrape", labels=["part"]
        )
        try:
            board = self._board()
            counts = Counter(e.state.value for e in board.listing(finished=False))
            for state in (JobState.UNCLAIMED, JobState.CLAIMED, JobState.SET_ASIDE):
                depth.add_metric([state.value], counts.get(state.value, 0))
            members = Counter((m.kind, m.status().value) for m in board.fleet())
            for (kind, status), n in sorted(members.items()):
                fleet.add_metric([kind, status], n)
            up.add_metric(["board"], 1)
        except Exception as exc:
            LOG.warning("metrics: the board did not answer: %s", exc)
            up.add_metric(["board"], 0)
        try:
            for flow_state, n in sorted(flow_counts(self._backend()).items()):
                flows.add_metric([flow_state], n)
            up.add_metric(["persistence"], 1)
        except Exception as exc:
            LOG.warning("metrics: persistence did not answer: %s", exc)
            up.add_metric(["persistence"], 0)
        yield from (depth, fleet, flows, up)


class _StatsCollector(Collector):
    """A conductor's counters, read from its ``Stats`` (so nothing is counted twice)."""

    def __init__(self, conductor: Any) -> None:
        self._conductor = conductor

    def collect(self) -> Iterator[Metric]:
        stats = self._conductor.stats
        for name, what in (
            ("claimed", "Jobs claimed"),
            ("consumed", "Jobs consumed (their flow ended)"),
            ("abandoned", "Jobs given back to the board"),
            ("set_aside", "Jobs set aside (could not or must not run)"),
            ("lost", "Jobs whose claim was lost"),
        ):
            metric = CounterMetricFamily(f"flowkit_jobs_{name}", what)
            metric.add_metric([], getattr(stats, name, 0))
            yield metric
        running = GaugeMetricFamily("flowkit_jobs_running", "Jobs this conductor runs now")
        running.add_metric([], self._conductor.running_jobs)
        yield running


class ConductorMetrics:
    """A conductor's metrics in ``registry``: its counters read at each scrape, and each ended flow's
    states and atom durations read once from persistence after its job is consumed (never per atom)."""

    def __init__(self, conductor: Any, registry: CollectorRegistry) -> None:
        self._conductor = conductor
        registry.register(_StatsCollector(conductor))
        conductor.flow_observers.append(self.job_finished)
        self.flows = PromCounter(
            "flowkit_flows_finished", "Flows ended, by final state", ["state"], registry=registry
        )
        self.atoms = PromCounter(
            "flowkit_atoms_finished", "Atoms of ended flows, by final state", ["state"], registry=registry
        )
        self.durations = Histogram(
            "flowkit_atom_duration_seconds",
            "Duration of an atom's last execute or revert, by task",
            ["task", "intention"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def job_finished(self, job: Job) -> None:
        """The conductor's flow observer: count the job's ended flow from its saved flow detail."""
        if job.flow_uuid is None:
            return
        with self._conductor.persistence.get_connection() as conn:
            self.flow_finished(conn.get_flow_detail(job.flow_uuid))

    def health(self) -> tuple[bool, dict[str, str]]:
        """For ``/healthz``: the board connected and neither it nor persistence in an outage."""
        c = self._conductor
        board = "ok" if c.board.connected and not c.board_down else "unreachable"
        persistence = "unreachable" if c.persistence_down else "ok"
        return board == persistence == "ok", {"board": board, "persistence": persistence}

    def flow_finished(self, fd: FlowDetail) -> None:
        """Count one ended flow detail and its atoms (called once per flow, never per atom)."""
        self.flows.labels((fd.state or FlowState.PENDING).value).inc()
        for ad in fd:
            self.atoms.labels(ad.state.value).inc()
            if ad.duration is not None:
                self.durations.labels(ad.name, ad.intention.value).observe(ad.duration)
