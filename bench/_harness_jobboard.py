"""Job board workloads shared by ``flowkit_jobboard.py`` and ``peer_jobboard.py`` (stdlib only).

Both sides run real conductor processes (flowkit's ``flowkit-conductor``, TaskFlow's blocking
conductor) on the same ZooKeeper with a ZooKeeper session timeout of 4 s, persistence in a fresh
PostgreSQL database per measurement, and one-task jobs whose task appends ``<pid> <time>`` to a trace
file when it starts. A side script only says how to start a conductor, post a job and count the jobs
left; the clock is read here, at the same points for both.

Cases:

- ``throughput``: N one-task jobs posted (``post_ms`` each), then K conductors (``--conductors``,
  default 1 and 3) started together; jobs/s = N / (first task start -> board empty). Also the CPU
  the conductors and the database's server processes spent per job meanwhile (``conductor_cpu_ms``,
  ``postgres_cpu_ms``, from ``/proc``), the ZooKeeper server's (``zookeeper_cpu_ms``: shared, an upper
  bound), and the share of all cores that was busy (``machine_busy``, ``/proc/stat``): wall-clock
  rates move with whatever else the machine runs, CPU per job much less, and on 2 cores it is what
  caps the rate (a ``machine_busy`` near 1.0 says so).
- ``waiting``: the same with tasks that wait :data:`WAIT_S` (sleep) after writing their start (cases
  ``waiting_<K>``, ``--waiting-jobs`` jobs): jobs that spend their time waiting on something else, as
  provisioning tasks do. With no-op tasks one conductor keeps about half of a 2-core machine busy, so
  K conductors can at most double its rate there, whatever the board does; with tasks that wait, the
  cores are not the limit, and the rate shows whether conductors get in each other's way on the board.
- ``latency``: one idle conductor; one job at a time; post-to-start = the task's start time minus the
  time just before ``post`` was called (p50/p90 over ``--samples`` jobs).
- ``failover``: conductor A runs a job whose task sleeps; B waits; A is SIGKILLed; failover = the time
  B's execution of the task starts minus the kill.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from _harness import log
from _harness_persistence import drop_postgres, postgres_url

ZK_HOSTS = os.environ.get("FLOWKIT_BENCH_ZK", "127.0.0.1:2181")
SESSION_TIMEOUT = 4.0
CASES = ("throughput", "waiting", "latency", "failover")
WAIT_S = 0.02
"""How long the task of a ``waiting`` case's job waits (a provisioning call's round trip to a remote API)."""
BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR.parent / ".bench" / "jobboard"


class Side(Protocol):
    name: str
    ready_marker: str
    """Text a conductor writes to its log once it is waiting for jobs."""

    def conductor_command(self, zk_path: str, persistence: str, name: str) -> list[str]: ...
    def open(self, zk_path: str, persistence: str) -> Any: ...
    def post(self, poster: Any, key: str, trace_dir: str, delay: float) -> None: ...
    def remaining(self, poster: Any) -> int: ...
    def close(self, poster: Any) -> None: ...


def trace_start(trace_dir: str, key: str) -> None:
    """Called by the task on both sides when it starts."""
    with open(Path(trace_dir) / key, "a") as f:
        f.write(f"{os.getpid()} {time.time():.6f}\n")


def _starts(trace_dir: Path, key: str) -> list[tuple[int, float]]:
    path = trace_dir / key
    if not path.exists():
        return []
    return [(int(p), float(t)) for p, t in (line.split() for line in path.read_text().splitlines() if line)]


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_pids(dbname: str) -> list[int]:
    """The PostgreSQL backends serving ``dbname``, and the WAL writer (shared with other databases)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if f" {dbname} " in line or "walwriter" in line]


def zookeeper_pids() -> list[int]:
    """The ZooKeeper server's JVM (shared with anything else using that server: its CPU is an upper bound)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "zookeeper" in line and "java" in line]


def machine_cpu() -> tuple[int, int]:
    """(busy, all) clock ticks of every core so far (``/proc/stat``), for :func:`machine_busy`."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of all cores' time that was busy between two :func:`machine_cpu` readings: near 1.0, a
    measurement was bound by CPU (more conductors cannot go faster on the same cores)."""
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    return {pid: proc_cpu(pid) for pid in pids}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_of` readings (a process that ended meanwhile: lost)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _until(check: Any, timeout: float, what: str, poll: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


class Fleet:
    """Conductor processes of one side, each logging to a file; all stopped at the end."""

    def __init__(self, side: Side, zk_path: str, persistence: str, work: Path) -> None:
        self.side, self.zk_path, self.persistence, self.work = side, zk_path, persistence, work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str) -> list[subprocess.Popen[bytes]]:
        """Start conductors at once, then wait until each is ready."""
        for name in names:
            with open(self.work / f"{name}.log", "wb") as out:
                self.procs[name] = subprocess.Popen(
                    self.side.conductor_command(self.zk_path, self.persistence, name),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=BENCH_DIR,
                )
        for name in names:
            path, proc = self.work / f"{name}.log", self.procs[name]
            _until(
                lambda p=path, q=proc: (
                    self.side.ready_marker in p.read_text(errors="replace")  # type: ignore[misc]
                    or q.poll() is not None
                ),
                60,
                f"conductor {name} to be ready",
                poll=0.05,
            )
            if proc.poll() is not None:
                raise RuntimeError(f"conductor {name} exited: {path.read_text(errors='replace')[-2000:]}")
        return [self.procs[name] for name in names]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class Setting:
    """A fresh ZooKeeper path, PostgreSQL database and trace directory for one measurement."""

    def __init__(self, side: Side, label: str) -> None:
        token = secrets.token_hex(4)
        self.side = side
        self.zk_path = f"/flowkit-bench/{side.name}-{label}-{token}"
        self.dbname = f"bench_jobboard_{side.name}_{token}"
        self.work = WORK_DIR / f"{side.name}-{label}-{token}"

    def __enter__(self) -> Setting:
        self.work.mkdir(parents=True, exist_ok=True)
        self.persistence = postgres_url(self.dbname)
        self.fleet = Fleet(self.side, self.zk_path, self.persistence, self.work)
        self.poster = self.side.open(self.zk_path, self.persistence)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.fleet.stop()
        self.side.close(self.poster)
        drop_postgres(self.dbname)
        if exc_type is None:  # keep the conductors' logs and traces of a failed measurement
            shutil.rmtree(self.work, ignore_errors=True)


def throughput(side: Side, n: int, conductors: int, wait: float = 0.0) -> dict[str, float]:
    """N jobs posted first (post cost alone), then K conductors started together; jobs/s is timed from
    the first task start to the board being empty, so conductor start-up is not counted. ``wait``:
    seconds each job's task sleeps after its start is written."""
    with Setting(side, f"tp{conductors}") as s:
        started = time.perf_counter()
        for i in range(n):
            side.post(s.poster, f"j{i}", str(s.work), wait)
        post_ms = (time.perf_counter() - started) / n * 1e3
        procs = s.fleet.start(*(f"c{i}" for i in range(conductors)))
        ours = cpu_of([p.pid for p in procs])
        server = cpu_of(postgres_pids(s.dbname))
        zookeeper, machine = cpu_of(zookeeper_pids()), machine_cpu()
        # polled every 50 ms (at most 1-2% of the run): counting the jobs left is work for the
        # board's server, which shares the 2 cores with the conductors being measured
        _until(lambda: side.remaining(s.poster) == 0, 1800, f"{n} jobs to be consumed", poll=0.05)
        emptied = time.time()
        conductor_cpu = cpu_used(ours, cpu_of(list(ours)))
        server_cpu = cpu_used(server, cpu_of(postgres_pids(s.dbname)))
        zookeeper_cpu = cpu_used(zookeeper, cpu_of(list(zookeeper)))
        busy = machine_busy(machine, machine_cpu())
        starts = [t for i in range(n) for _, t in _starts(s.work, f"j{i}")]
    total = emptied - min(starts)
    return {
        "total_s": total,
        "jobs_per_s": n / total,
        "per_task_us": total / n * 1e6,
        "post_ms": post_ms,
        "executions": float(len(starts)),
        "conductor_cpu_ms": conductor_cpu / n * 1e3,
        "postgres_cpu_ms": server_cpu / n * 1e3,
        "zookeeper_cpu_ms": zookeeper_cpu / n * 1e3,
        "machine_busy": busy,
    }


def latency(side: Side, samples: int) -> dict[str, float]:
    out = []
    with Setting(side, "lat") as s:
        s.fleet.start("c0")
        for i in range(samples + 2):  # the first two warm the conductor up (imports, connections)
            key = f"l{i}"
            before = time.time()
            side.post(s.poster, key, str(s.work), 0.0)
            _until(lambda k=key: _starts(s.work, k), 30, f"job {key} to start")  # type: ignore[misc]
            if i >= 2:
                out.append((_starts(s.work, key)[0][1] - before) * 1e3)
            _until(lambda: side.remaining(s.poster) == 0, 30, f"job {key} to be consumed", poll=0.002)
    out.sort()
    return {
        "p50_ms": statistics.median(out),
        "p90_ms": out[int(len(out) * 0.9) - 1],
        "max_ms": out[-1],
        "total_s": sum(out) / 1e3,
        "per_task_us": statistics.median(out) * 1e3,
    }


def failover(side: Side) -> dict[str, float]:
    with Setting(side, "fo") as s:
        [a] = s.fleet.start("a")
        side.post(s.poster, "slow", str(s.work), 60.0)
        _until(lambda: _starts(s.work, "slow"), 30, "a to start the job")
        assert _starts(s.work, "slow")[0][0] == a.pid
        [b] = s.fleet.start("b")
        a.kill()
        killed = time.time()
        a.wait(10)
        _until(
            lambda: any(pid == b.pid for pid, _ in _starts(s.work, "slow")),
            60,
            "b to take the job over",
            poll=0.01,
        )
        resumed = next(t for pid, t in _starts(s.work, "slow") if pid == b.pid)
    took = resumed - killed
    log(f"{side.name}: failover run: SIGKILL -> resumed in {took:.2f} s (limit {SESSION_TIMEOUT + 1:g} s)")
    return {
        "failover_s": took,
        "total_s": took,
        "per_task_us": took * 1e6,
        "session_timeout_s": SESSION_TIMEOUT,
    }


@dataclass(frozen=True)
class Options:
    cases: list[str]
    sizes: list[int]
    conductors: list[int]
    samples: int
    repeat: int
    boards: tuple[str, ...] = ("zookeeper",)
    waiting_jobs: int = 200


def parse_options(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description="job board bench")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--sizes", default="1000", help="N for throughput")
    p.add_argument("--conductors", default="1,3", help="conductor processes for throughput")
    p.add_argument("--samples", type=int, default=50, help="jobs for latency")
    p.add_argument("--waiting-jobs", type=int, default=200, help="N for waiting (tasks that wait)")
    p.add_argument("--repeat", type=int, default=3, help="median of this many runs (failover, throughput)")
    p.add_argument("--boards", default="zookeeper,sql", help="zookeeper, sql (PostgreSQL) or both")
    p.add_argument("--no-gc", action="store_true", help="accepted for the driver; nothing here is GC bound")
    a = p.parse_args(argv)
    ints = [int(x) for x in a.sizes.split(",") if x.strip()]
    return Options(
        cases=[c for c in a.cases.split(",") if c],
        sizes=ints,
        conductors=[int(x) for x in a.conductors.split(",") if x.strip()],
        samples=a.samples,
        repeat=max(1, a.repeat),
        boards=tuple(b for b in a.boards.split(",") if b),
        waiting_jobs=a.waiting_jobs,
    )


def _median(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Medians of the runs; failover also keeps each run (``run1_s``...) and the worst (``max_s``):
    its target holds in every run, not only in the median."""
    keys = runs[0].keys()
    out = {k: statistics.median(r[k] for r in runs) for k in keys} | {"runs": len(runs)}
    if "failover_s" in keys:
        each = [r["failover_s"] for r in runs]
        out |= {f"run{i}_s": took for i, took in enumerate(each, 1)} | {"max_s": max(each)}
    return out


def run_cases(side: Side, opts: Options) -> dict[str, Any]:
    """``{case: {n: figures}}``: throughput as ``throughput_<K>`` per conductor count."""
    results: dict[str, Any] = {}

    def measure(case: str, n: int, once: Any, repeat: int) -> None:
        try:
            results.setdefault(case, {})[str(n)] = _median([once() for _ in range(repeat)])
        except Exception as exc:  # one case failing must not hide the others
            log(f"{side.name}: {case} N={n} FAILED: {type(exc).__name__}: {exc}")
            results.setdefault(case, {})[str(n)] = {"error": f"{type(exc).__name__}: {exc}"}

    for case in opts.cases:
        if case == "throughput":
            for k in opts.conductors:
                for n in opts.sizes:
                    log(f"{side.name}: throughput N={n} conductors={k}")
                    measure(f"throughput_{k}", n, lambda n=n, k=k: throughput(side, n, k), opts.repeat)
        elif case == "waiting":
            n = opts.waiting_jobs
            for k in opts.conductors:
                log(f"{side.name}: throughput N={n} conductors={k}, tasks waiting {WAIT_S * 1e3:g} ms")
                measure(f"waiting_{k}", n, lambda n=n, k=k: throughput(side, n, k, WAIT_S), opts.repeat)
        elif case == "latency":
            log(f"{side.name}: latency x{opts.samples}")
            measure("latency", opts.samples, lambda: latency(side, opts.samples), 1)
        elif case == "failover":
            runs = max(opts.repeat, 5)  # issue 13: within timeout + 1 s in every one of 5 runs
            log(f"{side.name}: failover x{runs}")
            measure("failover", 1, lambda: failover(side), runs)
    return results
