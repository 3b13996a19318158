"""`diffmig worker`, and how `run` / `resume` hand a session to the workers (with REDIS_URL).

The worker is django-rq's (``get_worker``: rq's forking ``Worker``, one work horse per job)
on diffmig's queues, plus the watchdog: every ``DIFFMIG_WATCHDOG_INTERVAL`` seconds between
jobs one of the workers (a short Redis lock) runs ``services.watchdog.check``. SIGTERM is
rq's warm shutdown: the current unit (a few batches) ends, then the worker stops.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django_rq.utils import reset_db_connections
from django_rq.workers import get_worker
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import StopRequested
from rq.logutils import setup_loghandlers

from migrationsapp.cli.output import EXIT_OK, Output, Subcommand, session_exit_code
from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.sessions import session_document
from migrationsapp.services import watchdog
from migrationsapp.services.dispatch import (
    QueueUnavailableError,
    runs_in_workers,
    start_session,
)

WATCHDOG_LOCK = "diffmig:watchdog"
FOLLOW_INTERVAL_S = 0.5
IN_PROCESS = (
    "REDIS_URL is not set: runs execute in-process (`diffmig run` executes its session and "
    "waits; the web runs it in a thread), so there is no queue to work on."
)


class DiffmigWorker(Worker):
    """rq's Worker, with the watchdog's round among its maintenance tasks."""

    watchdog_interval: int = 10
    # Every round, not one worker per interval (a burst worker starts with one).
    always_watch: bool = False
    _watched_at: float | None = None
    _watching: bool = False

    @property
    def dequeue_timeout(self) -> int:
        # Wake up from waiting on an empty queue in time for the next round.
        return max(1, min(self.worker_ttl - 15, self.watchdog_interval))

    def _watchdog_due(self) -> bool:
        return (
            self._watched_at is None
            or time.monotonic() - self._watched_at >= self.watchdog_interval
        )

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return self._watchdog_due() or super().should_run_maintenance_tasks

    def run_maintenance_tasks(self) -> None:
        if self._watchdog_due():
            self.run_watchdog()
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()

    def _shutdown(self) -> None:
        if self._watching:
            # SIGTERM during a watchdog round: finish the round, then stop (between units).
            self._stop_requested = True
            return
        super()._shutdown()

    def run_watchdog(self) -> None:
        self._watched_at = time.monotonic()
        lock_s = max(1, self.watchdog_interval - 1)
        if not self.always_watch and not self.connection.set(
            WATCHDOG_LOCK, self.name, nx=True, ex=lock_s
        ):
            return  # another worker does this round
        self._watching = True
        try:
            report = watchdog.check()
            if report.acted:
                self.log.info(
                    "diffmig watchdog: took over %s, failed %s, dispatched %d job(s)",
                    report.expired or "none",
                    report.failed or "none",
                    len(report.dispatched),
                )
        except Exception:  # a round that fails must not stop the worker; the next one retries
            self.log.exception("diffmig watchdog: the round failed")
        finally:
            self._watching = False
            reset_db_connections()  # no connection may cross the next fork into a work horse
        if self._stop_requested:
            raise StopRequested()  # rq's warm shutdown, now that the round is over


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
        rq_worker = get_worker(
            *settings.DIFFMIG_QUEUES, worker_class=DiffmigWorker, name=options.get("name")
        )
        rq_worker.watchdog_interval = settings.DIFFMIG_WATCHDOG_INTERVAL
        rq_worker.always_watch = options["burst"]
        reset_db_connections()  # nothing open across the fork of a work horse
        rq_worker.work(burst=options["burst"], logging_level=level)
    except RedisError as error:
        raise QueueUnavailableError(f"the job queue (Redis) is unreachable: {error}") from error
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
