"""``flowkit-worker``: run a worker process until SIGTERM or Ctrl-C.

    flowkit-worker --transport amqp://guest:guest@127.0.0.1:5672// --exchange flowkit \\
                   --topic hypervisors --tasks mypkg.tasks:CreateServer,mypkg.more_tasks --threads 4

The first SIGTERM (or SIGINT) stops taking requests and lets the running tasks finish and answer, then
the process exits 0 (without waiting for calls abandoned after their timeout); a second one exits at
once (status 1), abandoning them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import click

from flowkit import extras
from flowkit.exceptions import FlowkitError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--transport", envvar="FLOWKIT_TRANSPORT", required=True, help="Broker URL (amqp://...).")
@click.option(
    "--exchange",
    default="flowkit",
    show_default=True,
    envvar="FLOWKIT_EXCHANGE",
    help="Exchange name shared with engines [env FLOWKIT_EXCHANGE].",
)
@click.option("--topic", required=True, help="The topic this worker serves (engines search topics).")
@click.option(
    "--tasks",
    "task_specs",
    multiple=True,
    required=True,
    help="pkg.mod:Class or pkg.mod (every Task class in it); comma separated or repeated.",
)
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1), help="Tasks at once.")
@click.option(
    "--max-async",
    default=100,
    show_default=True,
    type=click.IntRange(min=0),
    help="Async tasks at once besides --threads, on the worker's event loop (one thread).",
)
@click.option(
    "--heartbeat",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.05),
    help="Seconds between announcements; engines call a worker dead after 3 missed.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="FLOWKIT_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="[env FLOWKIT_LOG_LEVEL]",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    envvar="FLOWKIT_METRICS_PORT",
    help="Serve /metrics (Prometheus) and /healthz on 127.0.0.1:PORT (needs flowkit[serve]) "
    "[env FLOWKIT_METRICS_PORT]",
)
@click.version_option(package_name="flowkit", prog_name="flowkit-worker")
def main(
    transport: str,
    exchange: str,
    topic: str,
    task_specs: tuple[str, ...],
    threads: int,
    max_async: int,
    heartbeat: float,
    log_level: str,
    metrics_port: int | None,
) -> None:
    """Serve flowkit tasks to worker-based engines."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.getcwd() not in sys.path:  # like `python -m`: task modules next to where the worker starts
        sys.path.insert(0, os.getcwd())
    try:
        extras.require("amqp", "flowkit-worker")  # before importing kombu, for a plain message
        from flowkit.workers.worker import Worker

        worker = Worker(
            transport, exchange, topic, task_specs, threads=threads, heartbeat=heartbeat, max_async=max_async
        )
    except FlowkitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"worker {worker.id}: {', '.join(sorted(worker.tasks))}", err=True)
    if metrics_port is not None:
        try:
            extras.require("serve", "flowkit-worker --metrics-port")
        except FlowkitError as exc:
            raise click.ClickException(str(exc)) from exc
        from flowkit.workers import metrics

        server = metrics.start(metrics_port, worker)
        click.echo(f"worker {worker.id}: metrics on http://127.0.0.1:{server.server_port}/metrics", err=True)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if worker._stop.is_set():
            os._exit(1)
        logging.getLogger(__name__).info("signal %d: finishing running tasks, then exiting", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run()
    if worker.abandoned:
        # Calls abandoned after their timeout may never return, and the interpreter would wait for
        # their threads at exit; their requests were answered (AtomTimeout), so nothing is lost.
        logging.getLogger(__name__).warning(
            "exiting with %d abandoned call(s) still running", worker.abandoned
        )
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
