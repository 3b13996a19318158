"""The process behind `diffmig worker`: rq's forking Worker with a round of maintenance (the
watchdog), kept alive through Redis outages.

``DiffmigWorker`` is rq's ``Worker`` (one work horse per job) on diffmig's queues, plus a
round: every ``DIFFMIG_WATCHDOG_INTERVAL`` seconds between jobs one of the workers (a short
Redis lock) calls the round it was given (``services.schedule.worker_round``: the watchdog,
and once a day the retention policy). SIGTERM is rq's warm shutdown: the current unit (a few
batches) ends, then the worker stops.

rq quits its loop when Redis goes away in the middle of a job (it cannot record the job's
end), and leaves the work horse running. ``work_through_outages`` lets that horse finish its
unit (its lease keeps it exclusive), then starts a new rq worker once Redis answers again,
backing off up to ``RESTART_DELAYS_S[-1]`` seconds between tries: a Redis restart costs the
workers a pause, not their lives. The queued jobs Redis lost are dispatched again by the
watchdog from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django_rq.utils import reset_db_connections
from django_rq.workers import get_worker
from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import StopRequested
from rq.logutils import setup_loghandlers

from migrationsapp.queue.port import connection, unreachable

logger = logging.getLogger("diffmig.worker")

WATCHDOG_LOCK = "diffmig:watchdog"
# Seconds between two starts of the rq worker after it stopped on an outage (then the last).
RESTART_DELAYS_S = (1, 2, 4, 8, 15, 30)
# A worker that ran this long before an outage starts the delays again from the first.
STEADY_S = 60

# What a worker does between jobs: given its Redis connection, the lines it logs.
Round = Callable[[Redis], list[str]]


class DiffmigWorker(Worker):
    """rq's Worker, with diffmig's round (the watchdog) among its maintenance tasks."""

    watchdog_interval: int = 10
    # Every round, not one worker per interval (a burst worker starts with one).
    always_watch: bool = False
    on_round: Round | None = None
    _watched_at: float | None = None
    _watching: bool = False
    # Whether the last dequeue found the queues empty (how a burst ends on purpose).
    drained: bool = False

    @property
    def ended_on_purpose(self) -> bool:
        """rq's loop ended because it was asked to (SIGTERM) or a burst emptied the queues;
        rq also ends it, quietly, on an error it could not handle."""
        asked = self._stop_requested or self._shutdown_requested_date is not None
        return asked or self.drained

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        self.drained = result is None
        return result

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

    def unsubscribe(self) -> None:
        # rq unsubscribes from its command channel, then stops the thread that listens on it;
        # redis-py's stop() waits for that thread, which once unsubscribed waits up to rq's
        # 60 s for a new subscription: a warm shutdown could take a minute. Asked to stop
        # first (without waiting), the thread ends with the read the unsubscribe answers.
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop(timeout=0)
        super().unsubscribe()

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
            for line in self.on_round(self.connection) if self.on_round else []:
                self.log.info("%s", line)
        except Exception:  # a round that fails must not stop the worker; the next one retries
            self.log.exception("diffmig watchdog: the round failed")
        finally:
            self._watching = False
            reset_db_connections()  # no connection may cross the next fork into a work horse
        if self._stop_requested:
            raise StopRequested()  # rq's warm shutdown, now that the round is over


def run_worker(*, on_round: Round, name: str | None, burst: bool, level: str) -> None:
    """Work diffmig's queues (DIFFMIG_QUEUES) until SIGTERM, or until they are empty with
    ``burst`` (after one round); ``QueueUnavailableError`` when Redis cannot be reached at
    the start."""
    setup_loghandlers(level)
    try:
        connection().ping()
    except RedisError as error:
        raise unreachable(error) from error

    def make_worker() -> DiffmigWorker:
        rq_worker = get_worker(*settings.DIFFMIG_QUEUES, worker_class=DiffmigWorker, name=name)
        rq_worker.watchdog_interval = settings.DIFFMIG_WATCHDOG_INTERVAL
        rq_worker.always_watch = burst
        rq_worker.on_round = on_round
        reset_db_connections()  # nothing open across the fork of a work horse
        return rq_worker

    work_through_outages(make_worker, burst=burst, level=level)


def work_through_outages(
    make_worker: Callable[[], DiffmigWorker], *, burst: bool, level: str
) -> None:
    """Run rq workers from ``make_worker`` until one ends on purpose (SIGTERM, or a burst that
    emptied the queues); a worker that stopped on an error or an outage is replaced."""
    delays = iter(RESTART_DELAYS_S)
    while True:
        rq_worker: DiffmigWorker | None = None
        began = time.monotonic()
        try:
            rq_worker = make_worker()
            rq_worker.work(burst=burst, logging_level=level)
            if rq_worker.ended_on_purpose:
                return
            reason = "rq stopped the worker on an error (logged above)"
        except RedisError as error:
            reason = f"the job queue (Redis) is unreachable ({error})"
        stop = _stop_on_signal()
        if rq_worker is not None:
            _wait_for_horse(rq_worker)
        if time.monotonic() - began >= STEADY_S:
            delays = iter(RESTART_DELAYS_S)
        delay = next(delays, RESTART_DELAYS_S[-1])
        logger.warning("diffmig worker: %s; starting again in %d s", reason, delay)
        if stop.wait(delay):
            logger.info("diffmig worker: stopping on request")
            return


def _stop_on_signal() -> threading.Event:
    """Between two rq workers, SIGTERM and SIGINT end the loop (rq's own handlers are theirs)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _wait_for_horse(rq_worker: DiffmigWorker) -> None:
    """Let the work horse an rq worker left behind end its unit, then reap it; one that
    outlives the job timeout is killed (the watchdog takes its lease over)."""
    pid = rq_worker.horse_pid
    if not pid:
        return
    deadline = time.monotonic() + settings.DIFFMIG_JOB_TIMEOUT
    while time.monotonic() < deadline:
        try:
            ended, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if ended:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # rq puts each horse in a process group of its own
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
