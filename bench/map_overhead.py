"""What a ``Map`` costs per item beyond the same atoms in a static flow, on the serial engine.

Both sides build N no-op tasks, each providing one symbol, and run them to the end in memory (no
persistence); the time covers building the flow, loading the engine and running it, since a Map builds
its items when it runs. The static side is an unordered flow of the N tasks (``noop-k`` providing
``out-k``). The Map side is one Map over ``range(N)`` whose ``each`` builds the same task (named and
scoped per item by the Map) and collects every item's result into a list, with ``max_parallel`` unset
and set (lanes). Figures are printed, never asserted; the target is under 50 us per item.

    .venv/bin/python bench/map_overhead.py [N] [repeats]   # sides interleaved; min and median
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from flowkit import LinearFlow, Map, Task, UnorderedFlow, engines


class Noop(Task):
    def execute(self) -> int:
        return 1


def static(n: int) -> None:
    flow = UnorderedFlow("static").add(*(Noop(f"noop-{k}", provides=f"out-{k}") for k in range(n)))
    engines.load(flow).run()


def each(k: int, item: Any) -> Noop:
    return Noop("noop", provides="out")


def mapped(n: int, max_parallel: int | None) -> Callable[[int], None]:
    def go(n: int) -> None:
        flow = LinearFlow("mapped").add(
            Map("m", over="items", each=each, result="out", provides="outs", max_parallel=max_parallel)
        )
        engine = engines.load(flow, store={"items": range(n)})
        engine.run()
        assert len(engine.storage.fetch("outs")) == n

    return go


def once(fn: Callable[[int], None], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    sides: dict[str, Callable[[int], None]] = {
        "static": static,
        "max_parallel=None": mapped(n, None),
        "max_parallel=5": mapped(n, 5),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):  # interleaved, so a burst of load on a shared machine hits every side
        for name, fn in sides.items():
            times[name].append(once(fn, n))
    base_min, base_med = min(times["static"]), statistics.median(times["static"])
    print(f"static flow of {n} tasks: min {base_min * 1e6 / n:.1f} us/task, median {base_med * 1e6 / n:.1f}")
    for name in ("max_parallel=None", "max_parallel=5"):
        t_min, t_med = min(times[name]), statistics.median(times[name])
        print(
            f"Map over {n} items, {name}: min {t_min * 1e6 / n:.1f} us/item, median {t_med * 1e6 / n:.1f}; "
            f"over the static flow: {(t_min - base_min) * 1e6 / n:+.1f} us/item (min), "
            f"{(t_med - base_med) * 1e6 / n:+.1f} (median); target < 50"
        )


if __name__ == "__main__":
    main()
