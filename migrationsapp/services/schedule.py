"""What the workers do between jobs: the watchdog's round, and the daily retention policy.

Every watchdog round (``queue.worker``) calls ``worker_round``: ``services.watchdog.check``,
then ``enqueue_daily_retention``. The first worker of the day to ask takes a Redis key that
lives a day and enqueues ``jobs.apply_retention`` on the low-priority queue, so the policy
runs once a day with no cron and no scheduler process. A Redis restart loses the key: the
policy then runs once more, which is harmless (it deletes only what is past its age).
`diffmig cleanup` runs it by hand.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone
from redis import Redis

from migrationsapp.queue import port
from migrationsapp.services import watchdog

RETENTION_KEY = "diffmig:retention"
RETENTION_JOB = "migrationsapp.jobs.apply_retention"
DAY_S = 24 * 60 * 60


def enqueue_daily_retention(connection: Redis, *, now: dt.datetime | None = None) -> str | None:
    """Enqueue today's retention job unless a worker did in the last day; its job id, or None."""
    now = now or timezone.now()
    return port.enqueue_once_per(
        connection,
        RETENTION_JOB,
        key=RETENTION_KEY,
        period_s=DAY_S,
        value=now.isoformat(),
        job_id=f"diffmig-retention-{now:%Y-%m-%d}",
        # Bounded batches, but a first run on a large control database may take a while.
        timeout=settings.DIFFMIG_JOB_TIMEOUT * 6,
        failure_ttl=7 * DAY_S,
        description="diffmig retention policy (daily)",
    )


def worker_round(connection: Redis) -> list[str]:
    """One watchdog round on a worker, and the daily retention job; the lines to log."""
    report = watchdog.check()
    lines = []
    retention_job = enqueue_daily_retention(connection)
    if retention_job:
        lines.append(f"diffmig: the daily retention job enqueued ({retention_job})")
    if report.acted:
        lines.append(
            f"diffmig watchdog: started {report.started or 'none'}, took over "
            f"{report.expired or 'none'}, failed {report.failed or 'none'}, dispatched "
            f"{len(report.dispatched)} job(s)"
        )
    return lines
