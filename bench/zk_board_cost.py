"""Not a suite: what the ZooKeeper board alone costs per job, without persistence or engines.

N jobs are posted by this process's board, which then follows the tree (it lists the board once: a
board follows from its first read of its copy, and one that only posts never does); then K claimant
processes, each with its own board, claim and consume them (``claim_next`` + ``consume``, the
conductor's board calls) until none is left. Reported per job:

- claimants' CPU (all their threads: the claim loop, kazoo's connection and callback threads), summed;
- the poster's CPU while it only watches: what hearing every job's claim and consume costs a board
  that does nothing else, which is what each conductor pays for the jobs the others run;
- ZooKeeper requests sent by the claimants, by kind;
- the ZooKeeper server's CPU (``/proc``: shared with anything else using that server, an upper bound).

CPU, not wall time, because the machine is shared. ``--repeat`` runs the whole thing that many times
(the first also warms the server's JIT) and prints each run.

```
.venv/bin/python bench/zk_board_cost.py --jobs 1000 --claimants 3 --repeat 3
```
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness_jobboard import ZK_HOSTS, zookeeper_pids

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def count_requests(board: Any) -> collections.Counter[str]:
    """Count the requests ``board``'s client sends from now on, by kind (transactions by their ops)."""
    sent: collections.Counter[str] = collections.Counter()
    client = board._client
    call = client._call
    lock = threading.Lock()

    def counted(request: Any, async_object: Any) -> Any:
        kind = type(request).__name__
        if kind == "Transaction":
            kind += "(" + ",".join(type(op).__name__ for op in request.operations) + ")"
        with lock:
            sent[kind] += 1
        return call(request, async_object)

    client._call = counted
    return sent


def claimant(path: str, name: str) -> None:
    """Claim and consume until the board is empty; print CPU and requests as JSON."""
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

    board = ZooKeeperJobBoard(name, ZK_HOSTS, path, timeout=4)
    board.connect()
    board.job_count()  # following starts at the first read: its listing is start-up, not per job
    sent = count_requests(board)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()  # go
    cpu0 = time.process_time()
    done = 0
    while True:
        job = board.claim_next(name)
        if job is None:
            if board.job_count() == 0:
                break
            board.wait_claimable(0.05)
            continue
        board.consume(job, name)
        done += 1
    cpu = time.process_time() - cpu0
    board.close()
    sys.stdout.write(json.dumps({"cpu": cpu, "done": done, "sent": dict(sent)}) + "\n")


def run_once(n: int, k: int) -> dict[str, Any]:
    from flowkit.jobboard.backends.zookeeper import ZooKeeperJobBoard

    path = f"/bench_zkcost_{secrets.token_hex(4)}"
    poster = ZooKeeperJobBoard("poster", ZK_HOSTS, path, timeout=4)
    poster.connect()
    try:
        for i in range(n):
            poster.post(f"j{i}", details={"store": {"key": f"j{i}", "trace_dir": "/tmp/x" * 4}})
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--claimant", path, f"c{i}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(k)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        if sum(1 for _ in poster.iterjobs()) != n:  # follows from here on (see the docstring)
            raise AssertionError(f"the poster does not list the {n} jobs it posted")
        zk = zookeeper_pids()
        zk0 = sum(proc_cpu(p) for p in zk)
        me0 = time.process_time()
        wall0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        wall = time.perf_counter() - wall0
        zk_cpu = sum(proc_cpu(p) for p in zk) - zk0
        poster_cpu = time.process_time() - me0
    finally:
        poster.close()
        from kazoo.client import KazooClient

        client = KazooClient(hosts=ZK_HOSTS)
        client.start()
        client.delete(path, recursive=True)
        client.stop()
        client.close()
    sent: collections.Counter[str] = collections.Counter()
    for r in results:
        sent.update(r["sent"])
    assert sum(r["done"] for r in results) == n, results
    return {
        "wall_s": wall,
        "claimants_cpu_ms": sum(r["cpu"] for r in results) / n * 1e3,
        "poster_cpu_ms": poster_cpu / n * 1e3,
        "zookeeper_cpu_ms": zk_cpu / n * 1e3,
        "requests": sum(sent.values()) / n,
        "by_kind": {kind: round(c / n, 3) for kind, c in sorted(sent.items())},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--claimants", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--claimant", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.claimant:
        claimant(*a.claimant)
        return 0
    for i in range(a.repeat):
        r = run_once(a.jobs, a.claimants)
        print(
            f"run {i + 1}: jobs={a.jobs} claimants={a.claimants} wall={r['wall_s']:.2f}s "
            f"CPU ms/job: claimants {r['claimants_cpu_ms']:.2f}, watching poster {r['poster_cpu_ms']:.2f}, "
            f"ZooKeeper server {r['zookeeper_cpu_ms']:.2f}; requests/job {r['requests']:.2f} {r['by_kind']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
