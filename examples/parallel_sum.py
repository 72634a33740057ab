"""Sum the squares of 1..N in chunks that run at the same time, then add the parts up.

    python examples/parallel_sum.py [--chunks 4] [--n 1000000]

The chunks are independent, so a graph flow puts no order between them and the parallel engine runs
them on a thread pool at once. The total needs every part, so the graph flow orders it after all of
them: nobody wrote a link, the order comes from what each task requires and provides. (Chunks of
pure-Python arithmetic hold the GIL; ``executor="processes"`` would spread them over cores. The
chunks here also wait a little, as a task waiting on I/O would, so the overlap shows.)
"""

from __future__ import annotations

import argparse
import threading
import time

from flowkit import GraphFlow, Task, engines


class Overlap:
    """Counts how many chunks run at the same moment (to show that they do)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


OVERLAP = Overlap()


class SumOfSquares(Task):
    def execute(self, start: int, stop: int) -> int:
        with OVERLAP:
            time.sleep(0.2)  # stands for I/O: a download, a query
            return sum(i * i for i in range(start, stop))


class Total(Task):
    def execute(self, **parts: int) -> int:
        return sum(parts.values())


def make_flow(n: int, chunks: int) -> GraphFlow:
    flow = GraphFlow("sum-of-squares")
    size = -(-n // chunks)  # ceiling division
    parts = []
    for k in range(chunks):
        start, stop = 1 + k * size, min(n, (k + 1) * size) + 1
        parts.append(f"part-{k}")
        flow.add(SumOfSquares(f"chunk-{k}", provides=f"part-{k}", inject={"start": start, "stop": stop}))
    # ``requires`` names the symbols **parts receives (execute's signature cannot list them).
    flow.add(Total("total", provides="total", requires=parts))
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=4)
    args = parser.parse_args()

    engine = engines.load(make_flow(args.n, args.chunks), engine="parallel", max_workers=args.chunks)
    engine.run()
    results = engine.storage.fetch_all()
    for k in range(args.chunks):
        print(f"part-{k} = {results[f'part-{k}']}")
    expected = args.n * (args.n + 1) * (2 * args.n + 1) // 6
    print(f"total = {results['total']} ({'correct' if results['total'] == expected else 'WRONG'})")
    print(f"at most {OVERLAP.most} of {args.chunks} chunks ran at the same time")


if __name__ == "__main__":
    main()
