"""The limit beside the core suite: N no-op calls in a bare Python loop, no engine at all.

Why this floor: a no-op task's ``execute`` is one Python call; whatever an engine adds (ordering,
states, notifications, results) is measured against the cheapest way to make those N calls in the
same interpreter. Every flow case (linear, unordered, graph_chain, revert) gets the same figure: the
engine's work differs per case, the calls do not. Prints ``{case: {str(n): entry}}`` like the sides.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Sequence
from typing import Any

from _harness import FLOW_CASES, emit, guarded, median_of, parse_options


class _Noop:
    def execute(self) -> None:
        return None


def _once(n: int) -> dict[str, float]:
    calls = [_Noop().execute for _ in range(n)]
    gc.collect()
    start = time.perf_counter()
    for call in calls:
        call()
    return {"total_s": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv, cases=FLOW_CASES, sizes=(1000, 10000), compile_sizes=(), full_compile_sizes=())
    floor = {
        str(n): guarded(f"bare loop n={n}", lambda n=n: median_of(n, max(5, opts.repeat), lambda: _once(n)))
        for n in opts.sizes
    }
    results: dict[str, Any] = {case: floor for case in opts.cases if case in FLOW_CASES}
    emit(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
