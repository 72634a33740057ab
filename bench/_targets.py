"""The targets several suites judge alike (per-task time, speed-up on TaskFlow, flatness), and how a figure
is shown in them.

Why a module of its own: the core and persistence issues set the same three kinds of goal at different
sizes and limits; written once here, every suite judges and words them the same way, and a suite's own
module keeps only the targets that are its alone.
"""

from __future__ import annotations

from _suite import Results, Target, figure, ratio


def fmt(value: float | None, unit: str) -> str:
    """A figure as every suite's targets show it; ``-`` when it was not measured."""
    return "-" if value is None else f"{value:,.2f} {unit}"


def per_task_target(ours: Results, case: str, n: int, limit_us: float, name: str, short: str) -> Target:
    """flowkit's per-task time at ``n`` under ``limit_us``."""
    mine = figure(ours, case, n)
    return Target(
        name, fmt(mine, "us"), f"< {limit_us:g} us", None if mine is None else mine < limit_us, case, n, short
    )


def speedup_target(
    ours: Results, peer: Results, case: str, n: int, need: float, name: str, short: str
) -> Target:
    """flowkit at least ``need`` times faster than TaskFlow on the same case and size."""
    speedup = ratio(figure(peer, case, n), figure(ours, case, n))
    return Target(
        name, fmt(speedup, "x"), f">= {need:g}x", None if speedup is None else speedup >= need, case, n, short
    )


def flatness_target(
    ours: Results, case: str, small: int, large: int, most: float, name: str, short: str
) -> Target:
    """Per task at ``large`` at most ``most`` times per task at ``small``: a cost that does not grow with
    the flow's size. Judged at ``large``, the size whose row shows it."""
    at_small, at_large = figure(ours, case, small), figure(ours, case, large)
    flat = None if at_small is None or at_large is None or at_small <= 0 else at_large / at_small
    return Target(
        name, fmt(flat, "x"), f"<= {most:g}", None if flat is None else flat <= most, case, large, short
    )
