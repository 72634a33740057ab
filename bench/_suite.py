"""What a benchmark suite is, for the driver: two scripts (flowkit's, the peer's), their arguments, targets.

Why a registry of small declarative suites: persistence, job-board and worker benchmarks will follow the
core one. Each is a ``Suite`` in its own ``_suite_<name>.py`` module, registered in ``run.py``; the driver,
the JSON file and the table stay the same for all of them. Every script prints
``{case: {str(n): {"total_s", "per_task_us", ...}}}`` so the generic table can compare any two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _peer import PeerEnv

Results = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Preset:
    """What the driver was asked for; a suite turns it into each script's command line."""

    quick: bool = False
    full: bool = False
    repeat: int | None = None
    cases: tuple[str, ...] | None = None
    no_gc: bool = False


@dataclass(frozen=True)
class Target:
    """One goal from the issue; ``met`` is None when a figure it needs was not measured."""

    name: str
    measured: str
    limit: str
    met: bool | None
    case: str | None = None
    n: int | None = None
    short: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.met is None else ("met" if self.met else "MISSED")


@dataclass(frozen=True)
class Peer:
    """A peer besides TaskFlow (Celery, DBOS): its script, run in its own venv, prints the same shape
    with the suite's case names, so its figures sit in the same rows as flowkit's."""

    env: PeerEnv
    script: str
    cases: tuple[str, ...]
    args: Callable[[Preset], list[str]]


@dataclass(frozen=True)
class Limit:
    """The physical limit of a suite's work (bare loop, commit floor, raw broker echo): a script in our
    venv printing the same shape, shown beside flowkit's figure as how far from it we are."""

    label: str
    script: str
    cases: tuple[str, ...]
    args: Callable[[Preset], list[str]]


LimitTargets = Callable[[Results, Results, dict[str, Results]], list["Target"]]
"""Targets judged on flowkit's results, the limit's and the other peers' (by ``PeerEnv.key``)."""


@dataclass(frozen=True)
class Suite:
    """Scripts measured side by side (flowkit, TaskFlow, other peers, the limit) and the targets judged."""

    name: str
    flowkit_script: str
    peer_script: str | None
    flowkit_cases: tuple[str, ...]
    peer_cases: tuple[str, ...]
    flowkit_args: Callable[[Preset], list[str]]
    peer_args: Callable[[Preset], list[str]]
    targets: Callable[[Results, Results], list[Target]]
    notes: list[str] = field(default_factory=list)
    more_peers: tuple[Peer, ...] = ()
    limit: Limit | None = None
    limit_targets: LimitTargets | None = None
    case_family: Callable[[str], str] = str
    """The case asked for with ``--cases`` that a result or target case comes from: the job board's
    ``throughput`` gives ``throughput_1``, ``sql_throughput_3``... (the default: the same name)."""

    def asked(self, case: str | None, preset: Preset) -> bool:
        """Whether ``case`` (a result's or a target's) belongs to the cases this run was asked for."""
        return preset.cases is None or (case is not None and self.case_family(case) in preset.cases)


def entry(results: Results, case: str, n: int) -> dict[str, Any] | None:
    """The entry for (case, n), or None when absent."""
    found: dict[str, Any] | None = results.get(case, {}).get(str(n))
    return found


def figure(results: Results, case: str, n: int, key: str = "per_task_us") -> float | None:
    """One number of one entry; None when the case was not run, was skipped or failed."""
    found = entry(results, case, n)
    value = found.get(key) if found else None
    return float(value) if isinstance(value, int | float) else None


def ratio(peer: float | None, ours: float | None) -> float | None:
    """How many times faster flowkit is (peer time / flowkit time)."""
    if peer is None or ours is None or ours <= 0:
        return None
    return peer / ours


def chosen_cases(preset: Preset, known: tuple[str, ...]) -> tuple[str, ...]:
    """The requested cases one side knows (all of them when none were named); empty means skip it."""
    return known if preset.cases is None else tuple(c for c in known if c in preset.cases)


def common_args(preset: Preset, known: tuple[str, ...], default_repeat: int) -> list[str]:
    """``--cases``, ``--repeat`` and ``--no-gc`` as every script of a suite takes them."""
    repeat = preset.repeat or (1 if preset.quick else default_repeat)
    gc_flag = ["--no-gc"] if preset.no_gc else []
    return ["--cases", ",".join(chosen_cases(preset, known)), "--repeat", str(repeat), *gc_flag]
