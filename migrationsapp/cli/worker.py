"""`diffmig worker`, and how `run` / `resume` hand a session to the workers (with REDIS_URL).

The worker process itself (rq's worker with the watchdog, through Redis outages) is
``queue.worker``. A worker that cannot reach Redis when it starts exits with code 4.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from migrationsapp.cli.output import EXIT_OK, Output, Subcommand, session_exit_code
from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.queue.worker import run_worker
from migrationsapp.selectors.sessions import session_document
from migrationsapp.services.dispatch import runs_in_workers, start_session
from migrationsapp.services.schedule import worker_round

FOLLOW_INTERVAL_S = 0.5
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


# -- `run` and `resume` with workers ---------------------------------------------------------


def run_on_workers(session_id: uuid.UUID, options: dict[str, Any], out: Output) -> int:
    """Hand a launched session to the workers; with ``--wait`` follow it to its end.

    Outside a transaction, so the units are enqueued here and now: with Redis down the
    command fails (exit 4) and the session waits, running, for the watchdog.
    """
    start_session(session_id=session_id)
    if options.get("wait"):
        session = follow(session_id)
    else:
        session = MigrationStatus.objects.get(migration_session_id=session_id)
    if options.get("json"):
        out.json(session_document(session))
    elif options.get("wait"):
        out.session(session_document(session))
    return session_exit_code(session) if options.get("wait") else EXIT_OK


def follow(session_id: uuid.UUID) -> MigrationStatus:
    """Poll the control database until the session completes, fails, pauses or is cancelled."""
    ends = (
        SessionStatus.COMPLETED,
        SessionStatus.FAILED,
        SessionStatus.CANCELLED,
        SessionStatus.PAUSED,
    )
    while True:
        session = MigrationStatus.objects.get(migration_session_id=session_id)
        if session.overall_status in ends:
            return session
        time.sleep(FOLLOW_INTERVAL_S)


COMMANDS = [
    Subcommand(
        "worker",
        "with REDIS_URL: an RQ worker on diffmig's queues that also runs the watchdog",
        "diffmig worker",
        add_worker_arguments,
        worker,
    ),
]
