"""`diffmig worker`: with REDIS_URL, a process that works diffmig's queues.

`run` and `resume` hand their sessions to the workers through ``services.runs.start_run``.
The worker process itself (rq's worker with the watchdog, through Redis outages) is
``queue.worker``. A worker that cannot reach Redis when it starts exits with code 4.
"""

from __future__ import annotations

from typing import Any

from migrationsapp.cli.output import EXIT_OK, Output, Subcommand
from migrationsapp.queue.worker import run_worker
from migrationsapp.services.dispatch import runs_in_workers
from migrationsapp.services.schedule import worker_round

IN_PROCESS = (
    "REDIS_URL is not set: runs execute in-process (`diffmig run` executes its session and "
    "waits; the web runs it in a thread), so there is no queue to work on."
)


def add_worker_arguments(parser) -> None:
    parser.add_argument(
        "--burst",
        action="store_true",
        help="run the watchdog once, work until the queues are empty",
    )
    parser.add_argument("--name", help="the worker's name in RQ (default: rq's own)")


def worker(options: dict[str, Any], out: Output) -> int:
    if not runs_in_workers():
        out.line(IN_PROCESS)
        return EXIT_OK
    run_worker(
        on_round=worker_round,
        name=options.get("name"),
        burst=options["burst"],
        level="DEBUG" if options.get("verbosity", 1) >= 2 else "INFO",
    )
    return EXIT_OK


COMMANDS = [
    Subcommand(
        "worker",
        "with REDIS_URL: an RQ worker on diffmig's queues that also runs the watchdog",
        "diffmig worker",
        add_worker_arguments,
        worker,
    ),
]
