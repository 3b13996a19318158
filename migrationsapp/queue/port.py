"""What diffmig asks of the job queue (RQ on Redis through django-rq), in one place.

- ``enqueue_once``: a job by dotted path under an id, unless a live copy of that id is
  queued or has just started (two dispatchers never queue the same slice twice);
- ``enqueue_once_per``: a job at most once per period, by a Redis key that lives that long
  (the daily retention job: the first worker of the day to ask enqueues it);
- ``queue_health``: how many workers listen on a queue and how many jobs wait on it;
- for the guarded RQ dashboard: django-rq's own pages, and whether a queue index or a
  worker exists (django-rq would answer a 500 for an unknown one).

A Redis that cannot be reached is a ``QueueUnavailableError`` (transient: the watchdog
enqueues again from the control database once Redis is back).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

import django_rq
from django.conf import settings
from django.urls import URLPattern
from django_rq import urls as rq_urls
from django_rq.queues import get_queue_by_index
from django_rq.settings import get_queues_list
from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from migrationsapp.engine.errors import TransientError

__all__ = [
    "NoSuchJobError",
    "QueueHealth",
    "QueueUnavailableError",
    "configured_queue_count",
    "connection",
    "dashboard_urlpatterns",
    "enqueue_once",
    "enqueue_once_per",
    "low_queue_name",
    "queue_health",
    "queue_name",
    "worker_registered",
]

LIVE = (JobStatus.QUEUED,)  # our jobs are never deferred or scheduled


class QueueUnavailableError(TransientError):
    """Redis could not be reached: the units are dispatched again when it is back."""


def unreachable(error: RedisError, *, hint: str = "") -> QueueUnavailableError:
    return QueueUnavailableError(f"the job queue (Redis) is unreachable: {error}", hint=hint)


def queue_name() -> str:
    """The units' queue (the first of DIFFMIG_QUEUES)."""
    return settings.DIFFMIG_QUEUES[0]


def low_queue_name() -> str:
    """The low-priority queue (the last of DIFFMIG_QUEUES): housekeeping such as retention."""
    return settings.DIFFMIG_QUEUES[-1]


def connection(name: str | None = None) -> Redis:
    """The Redis connection of a queue (default: the units' queue)."""
    return django_rq.get_connection(name or queue_name())


# -- enqueue -------------------------------------------------------------------------------


def enqueue_once(
    job: str,
    *,
    job_id: str,
    kwargs: dict[str, Any],
    timeout: int,
    failure_ttl: int,
    description: str,
    started_after: dt.datetime,
    unavailable_hint: str = "",
) -> bool:
    """Enqueue ``job`` (a dotted path) on the units' queue as ``job_id`` unless a live copy of
    that id exists; True when enqueued.

    A copy is live while it waits in the queue, or when a worker started it after
    ``started_after`` (older, its worker died with it: a new copy may go).
    """
    queue = django_rq.get_queue(queue_name(), commit_mode="auto")
    try:
        for _ in range(2):
            try:
                queue.enqueue_call(
                    job,
                    kwargs=kwargs,
                    job_id=job_id,
                    unique=True,
                    timeout=timeout,
                    result_ttl=0,  # a finished job leaves nothing behind
                    failure_ttl=failure_ttl,
                    description=description,
                )
                return True
            except DuplicateJobError:
                if _is_live(queue, job_id, started_after=started_after):
                    return False
                _delete_job(queue.connection, job_id)
    except RedisError as error:
        raise unreachable(error, hint=unavailable_hint) from error
    return False


def _is_live(queue, job_id: str, *, started_after: dt.datetime) -> bool:
    """Whether a copy of this job will still run: waiting in the queue, or just started."""
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in LIVE:
        # Queued and still in the queue's list; one a dead worker had popped is not.
        return queue.get_job_position(job_id) is not None
    if status == JobStatus.STARTED:
        # A worker just took it, unless that was long ago: then that worker died with it.
        started = job.started_at or job.enqueued_at
        return started is not None and started > started_after
    return False  # finished, failed, stopped or canceled: a new copy may go


def _delete_job(redis: Redis, job_id: str) -> None:
    with contextlib.suppress(NoSuchJobError):  # expired meanwhile
        Job.fetch(job_id, connection=redis).delete()


def enqueue_once_per(
    redis: Redis,
    job: str,
    *,
    key: str,
    period_s: int,
    value: str,
    job_id: str,
    timeout: int,
    failure_ttl: int,
    description: str,
) -> str | None:
    """Enqueue ``job`` on the low-priority queue unless ``key`` was taken in the last
    ``period_s`` seconds (then None); its job id.

    A Redis restart loses the key, and the job runs once more: only for jobs for which
    that is harmless.
    """
    if not redis.set(key, value, nx=True, ex=period_s):
        return None
    queue = django_rq.get_queue(low_queue_name(), connection=redis, commit_mode="auto")
    queue.enqueue_call(
        job,
        job_id=job_id,
        timeout=timeout,
        result_ttl=period_s,
        failure_ttl=failure_ttl,
        description=description,
    )
    return job_id


# -- health --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueHealth:
    workers: int = 0  # registered on the units' queue
    queued: int = 0  # jobs waiting on it
    error: str = ""  # Redis could not be asked

    @property
    def stalled(self) -> bool:
        """Nothing would execute a launched run now."""
        return bool(self.error) or self.workers == 0


def queue_health() -> QueueHealth:
    """The workers rq has registered on the units' queue and the jobs waiting on it, or why
    Redis could not be asked."""
    try:
        queue = django_rq.get_queue(queue_name())
        return QueueHealth(
            workers=Worker.count(connection=queue.connection, queue=queue), queued=queue.count
        )
    except RedisError as error:
        return QueueHealth(error=str(error))


# -- the dashboard -------------------------------------------------------------------------


def dashboard_urlpatterns() -> list[URLPattern]:
    """django-rq's own dashboard pages (wrapped by views.rq_dashboard)."""
    return list(rq_urls.urlpatterns)


def configured_queue_count() -> int:
    """How many queues django-rq knows (its URLs index RQ_QUEUES, sorted by name)."""
    return len(get_queues_list())


def worker_registered(queue_index: int | str, key: str) -> bool:
    """Whether a worker of this key is registered on the Redis of queue ``queue_index``."""
    redis = get_queue_by_index(queue_index).connection
    return Worker.find_by_key(key, connection=redis) is not None
