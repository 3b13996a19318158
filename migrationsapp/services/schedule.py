"""The daily job the workers schedule among themselves: the retention policy.

Every watchdog round (``cli.rq_worker``) asks ``enqueue_daily_retention``; the first worker
of the day to ask takes a Redis key that lives a day and enqueues ``jobs.apply_retention``
on the low-priority queue, so the policy runs once a day with no cron and no scheduler
process. A Redis restart loses the key: the policy then runs once more, which is harmless
(it deletes only what is past its age). `diffmig cleanup` runs it by hand.
"""

from __future__ import annotations

import datetime as dt

import django_rq
from django.conf import settings
from django.utils import timezone
from redis import Redis

RETENTION_KEY = "diffmig:retention"
RETENTION_JOB = "migrationsapp.jobs.apply_retention"
DAY_S = 24 * 60 * 60


def low_queue_name() -> str:
    return settings.DIFFMIG_QUEUES[-1]


def enqueue_daily_retention(connection: Redis, *, now: dt.datetime | None = None) -> str | None:
    """Enqueue today's retention job unless a worker did in the last day; its job id, or None."""
    now = now or timezone.now()
    if not connection.set(RETENTION_KEY, now.isoformat(), nx=True, ex=DAY_S):
        return None
    job_id = f"diffmig-retention-{now:%Y-%m-%d}"
    queue = django_rq.get_queue(low_queue_name(), connection=connection, commit_mode="auto")
    queue.enqueue_call(
        RETENTION_JOB,
        job_id=job_id,
        # Bounded batches, but a first run on a large control database may take a while.
        timeout=settings.DIFFMIG_JOB_TIMEOUT * 6,
        result_ttl=DAY_S,
        failure_ttl=7 * DAY_S,
        description="diffmig retention policy (daily)",
    )
    return job_id
