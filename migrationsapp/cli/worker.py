"""`diffmig worker`, and how `run` / `resume` hand a session to the workers (with REDIS_URL).

The worker process itself (rq's worker with the watchdog, through Redis outages) is
``cli.rq_worker``. A worker that cannot reach Redis when it starts exits with code 4.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import django_rq
from django.conf import settings
from django_rq.utils import reset_db_connections
from django_rq.workers import get_worker
from redis.exceptions import RedisError
from rq.logutils import setup_loghandlers

from migrationsapp.cli.output import EXIT_OK, Output, Subcommand, session_exit_code
from migrationsapp.cli.rq_worker import DiffmigWorker, work_through_outages
from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.sessions import session_document
from migrationsapp.services.dispatch import (
    QueueUnavailableError,
    queue_name,
    runs_in_workers,
    start_session,
)

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
    level = "DEBUG" if options.get("verbosity", 1) >= 2 else "INFO"
    setup_loghandlers(level)
    try:
        django_rq.get_connection(queue_name()).ping()
    except RedisError as error:
        raise QueueUnavailableError(f"the job queue (Redis) is unreachable: {error}") from error

    def make_worker() -> DiffmigWorker:
        rq_worker = get_worker(
            *settings.DIFFMIG_QUEUES, worker_class=DiffmigWorker, name=options.get("name")
        )
        rq_worker.watchdog_interval = settings.DIFFMIG_WATCHDOG_INTERVAL
        rq_worker.always_watch = options["burst"]
        reset_db_connections()  # nothing open across the fork of a work horse
        return rq_worker

    work_through_outages(make_worker, burst=options["burst"], level=level)
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
