"""The worker-engine suite: ``flowkit_workers.py`` against ``peer_workers.py`` on the same RabbitMQ.

Targets (issue 5): 1,000 trivial tasks in an unordered flow on 2 worker processes (4 threads each) at
least 5x TaskFlow's throughput; a request's round trip under 2 ms at p50 (one request in flight: the
``linear`` case). Both sides start their own workers on a fresh exchange, one side after the other.
"""

from __future__ import annotations

from dataclasses import replace

from _peer import CELERY
from _suite import Limit, Peer, Preset, Results, Suite, Target, common_args, figure, ratio
from _targets import fmt

CASES = ("unordered", "linear")
THROUGHPUT_N = 1000
ROUND_TRIP_N = 200
SPEEDUP_MIN = 5.0
P50_LIMIT_MS = 2.0


def _args(preset: Preset, quick_sizes: tuple[int, int]) -> list[str]:
    args = common_args(preset, CASES, default_repeat=3)
    sizes = quick_sizes if preset.quick else (THROUGHPUT_N, ROUND_TRIP_N)
    return [*args, "--sizes", str(sizes[0]), "--rt-sizes", str(sizes[1])]


def flowkit_args(preset: Preset) -> list[str]:
    return _args(preset, (THROUGHPUT_N, ROUND_TRIP_N))


def peer_args(preset: Preset) -> list[str]:
    """Quick: TaskFlow at 200 / 50 tasks (it runs ~60 tasks/s, so 1,000 take ~16 s a repeat)."""
    return _args(preset, (200, 50))


def worker_targets(ours: Results, peer: Results) -> list[Target]:
    fk_rate = figure(ours, "unordered", THROUGHPUT_N, "tasks_per_s")
    peer_ns = sorted(int(n) for n in peer.get("unordered", {}))
    tf_rate = figure(peer, "unordered", peer_ns[-1], "tasks_per_s") if peer_ns else None
    speedup = None if fk_rate is None or not tf_rate else fk_rate / tf_rate
    p50 = figure(ours, "linear", ROUND_TRIP_N, "rt_p50_ms")
    p99 = figure(ours, "linear", ROUND_TRIP_N, "rt_p99_ms")
    return [
        Target(
            f"unordered N={THROUGHPUT_N:,} throughput",
            fmt(fk_rate, "tasks/s"),
            f"TaskFlow {fmt(tf_rate, 'tasks/s')}",
            None,
            "unordered",
            THROUGHPUT_N,
            "rate",
        ),
        Target(
            f"unordered N={THROUGHPUT_N:,} vs TaskFlow",
            fmt(speedup, "x"),
            f">= {SPEEDUP_MIN:g}x",
            None if speedup is None else speedup >= SPEEDUP_MIN,
            "unordered",
            THROUGHPUT_N,
            ">=5x",
        ),
        Target(
            "round trip p50 (one request in flight)",
            fmt(p50, "ms"),
            f"< {P50_LIMIT_MS:g} ms",
            None if p50 is None else p50 < P50_LIMIT_MS,
            "linear",
            ROUND_TRIP_N,
            "p50<2ms",
        ),
        Target(
            "round trip p99 (one request in flight)",
            fmt(p99, "ms"),
            "(reported)",
            None,
            "linear",
            ROUND_TRIP_N,
            "p99",
        ),
    ]


SUITE = Suite(
    name="workers",
    flowkit_script="flowkit_workers.py",
    peer_script="peer_workers.py",
    flowkit_cases=CASES,
    peer_cases=CASES,
    flowkit_args=flowkit_args,
    peer_args=peer_args,
    targets=worker_targets,
    notes=[
        "RabbitMQ at 127.0.0.1:5672; 2 worker processes x 4 threads per side; no-op tasks",
        "unordered: total = engine load + run; tasks/s = N / total",
        "linear: one request in flight; round trip = atom RUNNING -> SUCCESS in the engine (p50/p99 in "
        ".bench/results-workers.json)",
        "quick: TaskFlow at unordered 200 / linear 50 (the ratio then compares different N)",
    ],
)


# -- issue 13: close to a raw kombu echo; Celery beside ---------------------------------------------------

RATE_MIN = 5000.0
P50_RATIO_MAX = 1.3
P99_RATIO_MAX = 2.0


def celery_args(preset: Preset) -> list[str]:
    """Celery runs the same N as flowkit (it is not slow like TaskFlow), plus its chain."""
    args = flowkit_args(preset)
    return [*args[:1], f"{args[1]},chain", *args[2:]] if args[:1] == ["--cases"] else args


def workers_limit_targets(ours: Results, limit: Results, others: dict[str, Results]) -> list[Target]:
    """Issue 13: >= 5,000 tasks/s; round trip p50 <= 1.3x and p99 <= 2x the raw echo in the same run."""
    rate = figure(ours, "unordered", THROUGHPUT_N, "tasks_per_s")
    celery = figure(others.get("celery", {}), "unordered", THROUGHPUT_N, "tasks_per_s")
    celery_p50 = figure(others.get("celery", {}), "linear", ROUND_TRIP_N, "rt_p50_ms")
    targets = [
        Target(
            f"unordered N={THROUGHPUT_N:,} throughput (issue 13)",
            f"{fmt(rate, 'tasks/s')} (Celery group {fmt(celery, 'tasks/s')})",
            f">= {RATE_MIN:,.0f} tasks/s",
            None if rate is None else rate >= RATE_MIN,
            "unordered",
            THROUGHPUT_N,
            ">=5k/s",
        )
    ]
    for key, most in (("rt_p50_ms", P50_RATIO_MAX), ("rt_p99_ms", P99_RATIO_MAX)):
        mine, echo = figure(ours, "linear", ROUND_TRIP_N, key), figure(limit, "linear", ROUND_TRIP_N, key)
        times = ratio(mine, echo)
        label = key.removeprefix("rt_").removesuffix("_ms")
        targets.append(
            Target(
                f"round trip {label} vs raw kombu echo (issue 13)",
                f"{fmt(times, 'x')} ({fmt(mine, 'ms')} vs {fmt(echo, 'ms')}; Celery p50 "
                f"{fmt(celery_p50, 'ms')})",
                f"<= {most:g}x",
                None if times is None else times <= most,
                "linear",
                ROUND_TRIP_N,
                f"{label}<={most:g}x",
            )
        )
    return targets


SUITE = replace(
    SUITE,
    more_peers=(Peer(CELERY, "peer_celery.py", (*CASES, "chain"), celery_args),),
    limit=Limit("raw kombu echo", "limit_workers.py", CASES, flowkit_args),
    limit_targets=workers_limit_targets,
    notes=[
        *SUITE.notes,
        "Celery: unordered = group(noop x N); linear = N sequential delay().get() (per task, round trip "
        "p50/p99); chain = chain(noop x N), each link sent by the worker that ran the one before; 2 workers "
        "--pool threads -c 4, results over rpc:// (peer_celery.py)",
        "limit: 2 kombu echo processes, no engine (limit_workers.py)",
    ],
)
