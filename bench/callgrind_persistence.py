"""A deterministic count of the persistence path's work: instructions under callgrind, not time.

The machine the bench runs on is shared and loaded, so per-task times move by 2x between runs. This
script is the workload to count instructions of instead: load + run of a linear flow of N no-op tasks
on a SQLite file (after a 20-task warm-up, with the schema already there). Run it twice, with N=0 and
N=1000; the difference is the cost of the 1,000 tasks::

    for n in 0 1000; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \
        .venv/bin/python bench/callgrind_persistence.py $n 2>&1 | grep Collected; done

(issue 13: 973M instructions per 1,000 tasks before the prepared statements, 552M after).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flowkit_core import Noop

from flowkit import LinearFlow, engines
from flowkit.persistence import backends


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = backends.fetch(f"sqlite:///{tmp}/callgrind.db")
        with backend.get_connection() as conn:
            conn.upgrade()

        def once(k: int) -> None:
            engines.load(
                LinearFlow("linear").add(*(Noop(name=f"t{i}") for i in range(k))), backend=backend
            ).run()

        once(20)
        if n:
            once(n)
        backend.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
