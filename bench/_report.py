"""Print a suite's results as a comparison table and a targets table: ``rich`` if present, else plain text.

Why a fallback: the driver must still report when run with an interpreter that lacks flowkit's
dependencies (e.g. ``--skip-flowkit`` from a bare python).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from _suite import Results, Target, entry, figure, ratio

HEADERS = (
    "case",
    "N",
    "flowkit us/task",
    "flowkit s",
    "TaskFlow us/task",
    "TaskFlow s",
    "ratio TF/fk",
    "targets",
    "detail",
)


@dataclass(frozen=True)
class Column:
    """Another side's figures shown beside flowkit's: a peer (ratio peer/flowkit: how many times faster
    flowkit is) or the limit (ratio flowkit/limit: how far from it flowkit is)."""

    short: str
    results: Results


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _short(seconds: float) -> str:
    return f"{seconds:.3g}s" if seconds >= 1 else f"{seconds * 1000:.3g}ms"


def _detail(side: str, found: dict[str, Any] | None) -> str:
    """The one thing worth knowing beyond the time: phases, RSS, a skip or an error."""
    if not found:
        return ""
    if "error" in found:
        return f"{side} ERROR {found['error'][:80]}"
    if "skipped" in found:
        return f"{side} skipped"
    if "peak_rss_mib" in found:
        return f"{side} peak RSS {found['peak_rss_mib']:,.0f} MiB"
    if "compile_s" in found:
        phases = "/".join(_short(found[k]) for k in ("build_s", "compile_s", "prepare_s", "validate_s"))
        return f"{side} build(untimed)/c/p/v {phases}"
    return ""


def headers(columns: list[Column], limit: Column | None) -> tuple[str, ...]:
    """The base headers, then two per other peer and two for the limit (before targets and detail)."""
    extra = [h for c in columns for h in (f"{c.short} us/task", f"ratio {c.short}/fk")]
    if limit is not None:
        extra += ["limit us/task", "fk/limit"]
    return (*HEADERS[:7], *extra, *HEADERS[7:])


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x"


def _extra(ours: Results, case: str, n: int, columns: list[Column], limit: Column | None) -> list[str]:
    fk = figure(ours, case, n)
    cells = []
    for c in columns:
        theirs = figure(c.results, case, n)
        cells += [_num(theirs), _ratio_text(ratio(theirs, fk))]
    if limit is not None:
        floor = figure(limit.results, case, n)
        cells += [_num(floor, 2), _ratio_text(ratio(fk, floor))]
    return cells


def rows(
    ours: Results,
    peer: Results,
    targets: list[Target],
    columns: list[Column] | None = None,
    limit: Column | None = None,
) -> list[tuple[str, ...]]:
    """One row per (case, N) measured on flowkit's side or a peer's, in flowkit's case order."""
    columns = columns or []
    sides = [ours, peer, *(c.results for c in columns)]
    cases = list(dict.fromkeys(case for side in sides for case in side))
    out = []
    for case in cases:
        for n in sorted({int(k) for side in sides for k in side.get(case, {})}):
            fk, tf = figure(ours, case, n), figure(peer, case, n)
            marks = ", ".join(f"{t.short} {t.verdict}" for t in targets if t.case == case and t.n == n)
            details = "; ".join(
                d for d in (_detail("fk", entry(ours, case, n)), _detail("tf", entry(peer, case, n))) if d
            )
            speedup = ratio(tf, fk)
            out.append(
                (
                    case,
                    f"{n:,}",
                    _num(fk),
                    _secs(figure(ours, case, n, "total_s")),
                    _num(tf),
                    _secs(figure(peer, case, n, "total_s")),
                    "-" if speedup is None else f"{speedup:,.1f}x",
                    *_extra(ours, case, n, columns, limit),
                    marks,
                    details,
                )
            )
    return out


def _plain(title: str, headers: tuple[str, ...], body: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in body:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _rich(title: str, headers: tuple[str, ...], body: list[tuple[str, ...]]) -> bool:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        return False
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if 1 <= i < len(headers) - 2 else "left")
    for r in body:
        styled = [
            re.sub(r"\bmet\b", "[green]met[/]", escape(c)).replace("MISSED", "[bold red]MISSED[/]") for c in r
        ]
        table.add_row(*styled)
    Console(width=max(160, Console().width)).print(table)
    return True


def show(title: str, headers: tuple[str, ...], body: list[tuple[str, ...]]) -> None:
    """Print one table, with rich when it imports."""
    if not _rich(title, headers, body):
        _plain(title, headers, body)


def report(
    suite: str,
    ours: Results,
    peer: Results,
    targets: list[Target],
    notes: list[str],
    columns: list[Column] | None = None,
    limit: Column | None = None,
) -> None:
    """The comparison table, then every target with its verdict."""
    columns = columns or []
    title = ", ".join(["TaskFlow 6.5.0", *(c.short for c in columns), *(["the limit"] if limit else [])])
    show(f"flowkit vs {title}: {suite}", headers(columns, limit), rows(ours, peer, targets, columns, limit))
    for note in notes:
        print(f"  note: {note}")
    show(
        f"targets: {suite}",
        ("target", "measured", "limit", "verdict"),
        [(t.name, t.measured, t.limit, t.verdict) for t in targets],
    )
