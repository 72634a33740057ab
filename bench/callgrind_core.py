"""A deterministic count of the in-memory engine's work per task: instructions under callgrind.

The bench machine is shared, so per-task times move between runs; instruction counts do not. This
script runs one ``flowkit_core`` case (linear, graph_chain, revert) at size N after a 20-task warm-up,
and times nothing: the flow is built outside, and only ``engines.load`` + ``run()`` is collected, as
callgrind is told to count inside ``sys.call_tracing`` alone::

    for n in 1000 10000; do valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect=sys_call_tracing --callgrind-out-file=/tmp/cg.linear.$n \
        .venv/bin/python bench/callgrind_core.py linear $n 2>&1 | grep Collected; done

Collected / N is the cost per task; (collected at 10,000 - at 1,000) / 9,000 the marginal one.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import _run_flow, build_flow
from flowkit_core import FlowkitSide


def main(case: str, n: int) -> None:
    side = FlowkitSide()
    _run_flow(side, case, build_flow(side, case, 20))
    flow = build_flow(side, case, n)
    gc.collect()
    sys.call_tracing(_run_flow, (side, case, flow))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
