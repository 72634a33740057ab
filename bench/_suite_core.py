"""The core engine suite: ``flowkit_core.py`` against ``peer_core.py``, and the issue's targets for it.

Targets (flowkit figures; the ratio needs the peer measured in the same run):
per task < 50 us and >= 100x faster than TaskFlow for linear / unordered / graph chain / revert at
N=1,000; per-task cost flat (10,000 vs 1,000 within 1.3x); compile+prepare+validate of a random DAG under
0.5 s at 5,000 atoms and under 10 s at 100,000; a 100,000-task flow under 1 GiB peak RSS.
"""

from __future__ import annotations

from dataclasses import replace

from _suite import Limit, Preset, Results, Suite, Target, common_args, figure, ratio
from _targets import flatness_target, fmt, per_task_target, speedup_target

FLOW_CASES = ("linear", "unordered", "graph_chain", "revert")
ASYNC_CASES = ("async_unordered", "async_linear")
FLOWKIT_CASES = (*FLOW_CASES, "compile", "memory", *ASYNC_CASES)
PEER_CASES = (*FLOW_CASES, "compile")
PER_TASK_LIMIT_US = 50.0
ASYNC_LIMIT_US = 30.0
"""Issue 11: an async no-op atom costs under 30 us (many at once on the parallel engine's loop; one at a
time on the serial engine, which runs the loop in its own thread)."""
SPEEDUP_MIN = 100.0
FLATNESS_MAX = 1.3
COMPILE_LIMITS_S = {5000: 0.5, 100000: 10.0}
MEMORY_N = 100000
MEMORY_LIMIT_MIB = 1024.0


def flowkit_args(preset: Preset) -> list[str]:
    """Quick: no 10k flows, no 100k compile, no memory child; otherwise every size a target names."""
    args = common_args(preset, FLOWKIT_CASES, default_repeat=3)
    if preset.quick:
        return [*args, "--sizes", "100,1000", "--compile-sizes", "1000,5000", "--memory-sizes", ""]
    return [
        *args,
        "--sizes",
        "100,1000,10000",
        "--compile-sizes",
        "1000,5000,100000",
        "--memory-sizes",
        str(MEMORY_N),
    ]


def peer_args(preset: Preset) -> list[str]:
    """The peer stops at 1,000 tasks (10,000 shows as skipped); ``--full`` adds its minute-long 5k compile."""
    args = common_args(preset, PEER_CASES, default_repeat=3)
    if preset.quick:
        return [*args, "--sizes", "100", "--compile-sizes", "1000"]
    return [*args, "--sizes", "100,1000,10000", *(["--full"] if preset.full else [])]


def _flow_targets(ours: Results, peer: Results, case: str) -> list[Target]:
    return [
        per_task_target(ours, case, 1000, PER_TASK_LIMIT_US, f"{case} N=1,000 per task", "<50us"),
        speedup_target(ours, peer, case, 1000, SPEEDUP_MIN, f"{case} N=1,000 vs TaskFlow", ">=100x"),
        flatness_target(ours, case, 1000, 10000, FLATNESS_MAX, f"{case} flatness 10k/1k", "flat"),
    ]


def core_targets(ours: Results, peer: Results) -> list[Target]:
    """Every target of the core issue, judged on flowkit's figures (and the peer's for the ratio)."""
    targets = [t for case in FLOW_CASES for t in _flow_targets(ours, peer, case)]
    for n, limit in COMPILE_LIMITS_S.items():
        total = figure(ours, "compile", n, "total_s")
        targets.append(
            Target(
                f"compile+validate {n:,}-atom DAG",
                fmt(total, "s"),
                f"< {limit:g} s",
                None if total is None else total < limit,
                "compile",
                n,
                f"<{limit:g}s",
            )
        )
    for case in ASYNC_CASES:
        per_task = figure(ours, case, 1000)
        targets.append(
            Target(
                f"{case} N=1,000 per async no-op",
                fmt(per_task, "us"),
                f"< {ASYNC_LIMIT_US:g} us",
                None if per_task is None else per_task < ASYNC_LIMIT_US,
                case,
                1000,
                "<30us",
            )
        )
    rss = figure(ours, "memory", MEMORY_N, "peak_rss_mib")
    targets.append(
        Target(
            f"memory {MEMORY_N:,}-task flow peak RSS",
            fmt(rss, "MiB"),
            "< 1 GiB",
            None if rss is None else rss < MEMORY_LIMIT_MIB,
            "memory",
            MEMORY_N,
            "<1GiB",
        )
    )
    return targets


SUITE = Suite(
    name="core",
    flowkit_script="flowkit_core.py",
    peer_script="peer_core.py",
    flowkit_cases=FLOWKIT_CASES,
    peer_cases=PEER_CASES,
    flowkit_args=flowkit_args,
    peer_args=peer_args,
    targets=core_targets,
    notes=[
        "no-op tasks; per task = median total / N; total = engine load + run (run compiles)",
        "unordered: parallel engine, 8 threads; TaskFlow has a ~1 s executor shutdown floor per run",
        "compile: load+compile, prepare, validate of one seeded random DAG; building the flow (adding "
        "atoms) is shown but not counted",
    ],
)


# -- issue 13: close to the limit ----------------------------------------------------------------------

LIMIT_PER_TASK_US = {"linear": 6.0, "graph_chain": 6.0, "revert": 6.0, "unordered": 15.0}
LIMIT_FLATNESS_MAX = 1.2
LIMIT_MEMORY_MIB = 300.0


def limit_args(preset: Preset) -> list[str]:
    sizes = "100,1000" if preset.quick else "100,1000,10000"
    return [*common_args(preset, FLOW_CASES, default_repeat=5), "--sizes", sizes]


def core_limit_targets(ours: Results, limit: Results, others: dict[str, Results]) -> list[Target]:
    """Issue 13's targets: per task at 1k and 10k, flatness, 100k-task memory (the bare loop beside)."""
    targets = []
    for case, most in LIMIT_PER_TASK_US.items():
        for n in (1000, 10000):
            mine = figure(ours, case, n)
            floor = figure(limit, case, n)
            targets.append(
                Target(
                    f"{case} N={n:,} load+run per task (issue 13)",
                    f"{fmt(mine, 'us')} ({fmt(ratio(mine, floor), 'x')} the bare loop)",
                    f"<= {most:g} us",
                    None if mine is None else mine <= most,
                    case,
                    n,
                    f"<={most:g}us",
                )
            )
        name = f"{case} flatness 10k/1k (issue 13)"
        targets.append(flatness_target(ours, case, 1000, 10000, LIMIT_FLATNESS_MAX, name, "flat1.2"))
    rss = figure(ours, "memory", MEMORY_N, "peak_rss_mib")
    targets.append(
        Target(
            f"memory {MEMORY_N:,}-task flow peak RSS (issue 13)",
            fmt(rss, "MiB"),
            f"< {LIMIT_MEMORY_MIB:g} MiB",
            None if rss is None else rss < LIMIT_MEMORY_MIB,
            "memory",
            MEMORY_N,
            "<300MiB",
        )
    )
    return targets


SUITE = replace(
    SUITE,
    limit=Limit("bare loop", "limit_core.py", FLOW_CASES, limit_args),
    limit_targets=core_limit_targets,
    notes=[*SUITE.notes, "limit: N no-op calls in a bare Python loop (limit_core.py); fk/limit = how far"],
)
